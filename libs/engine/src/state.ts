import {
  callKey as callKeyOf, digestOf,
  type RunSummary, type AgentSpec, type AnyJournalEvent, type ApprovalStatus, type AssistantMessage, type ChatToolCall, type Cost,
  type JsonValue, type ModelHint, type PinnedTool, type PlannerDecision, type PlannerStepView, type RiskTier, type RunError,
  type RunStatus, type SessionContext,
} from '#libs/contracts';

/** A step that has started and not yet finished. */
export interface InFlightStep {
  step: number;
  stepId?: string;
  tool: string;
  args: JsonValue;
  callKey: string;
  /** `started`: decided, not yet dispatched; `called`: dispatched to the tool-runner. */
  phase: 'started' | 'called';
  /** Short digest of the canonical arguments (loop detection). */
  argsDigest?: string;
  /** The worst-case cost held for this call (`budget.reserved`); absent for free calls. */
  reservedUsd?: number;
  /** The LLM tool call (react) or the planner's call id this step answers. */
  callId?: string;
}

/**
 * The LLM call of the step in flight (react, and `call_llm` of external planners). `started`:
 * decided, not yet called; `called`: `llm.called` recorded, the reply not yet.
 */
export interface LlmInFlight {
  step: number;
  callKey: string;
  phase: 'started' | 'called';
  /** The agent's model, the planner's, or `auto` (the router chooses by `hint`). */
  model: string;
  hint?: ModelHint;
  reservedUsd?: number;
  /** The external planner's decision this call carries out (its messages); absent under react. */
  decision?: Extract<PlannerDecision, { kind: 'call_llm' }>;
}

/** An external planner's progress in the run (folded from `planner.decided`). */
export interface PlannerProgress {
  /** Decisions recorded so far. */
  decisions: number;
  /** The latest decision, until it is acted on (its step starts, or the run ends). */
  pending: PlannerDecision | null;
  /** The run's session memory writes so far (null: deleted). */
  memory: Record<string, JsonValue | null>;
  /** Partial outputs emitted so far. */
  emitted: JsonValue[];
  /** Decisions since the last step started (a planner that only emits is stopped). */
  sinceStep: number;
}

export interface StepRecord {
  step: number;
  stepId?: string;
  tool: string;
  ok: boolean;
  /** The tool's error message when `ok` is false. */
  error?: string;
  /** Short digests of the canonical arguments and of the outcome (loop detection). */
  argsDigest?: string;
  outcomeDigest?: string;
}

/**
 * The run's latest approval (a run waits for at most one at a time). `pending` while the run is
 * `waiting_approval`; `approved` until the approved call has started (and after); `denied` and
 * `expired` end the run.
 */
export interface ApprovalState {
  approvalId: string;
  /** The step the call is for (the next step when it was requested). */
  step: number;
  callKey: string;
  tool: string;
  version: string;
  args: JsonValue;
  argsHash: string;
  riskTier: RiskTier;
  /** `at` of approval.requested. */
  requestedAt: string;
  expiresAt: string;
  status: ApprovalStatus;
  /** `at` of the event that decided or expired it. */
  decidedAt?: string;
  by?: string;
  reason?: string;
}

/** The state of one run: a fold over its journal. Plain data, safe to snapshot as JSON. */
export interface RunState {
  runId: string;
  tenantId: string;
  status: RunStatus;
  agent: AgentSpec | null;
  input: JsonValue;
  sessionId?: string;
  metadata?: Record<string, string>;
  tools: Record<string, PinnedTool>;
  /** Number of steps started so far. */
  step: number;
  /** Results of completed graph steps by step id. */
  results: Record<string, JsonValue>;
  history: StepRecord[];
  inFlight: InFlightStep | null;
  cancelRequested: boolean;
  output: JsonValue | null;
  error: RunError | null;
  cost: Cost;
  /**
   * Steps in a row that only repeated an earlier call (same tool and arguments) with an outcome
   * already seen for it: no new information (loop detection). Optional: absent in older snapshots.
   */
  staleSteps?: number;
  /** A reserved call that finished and is not yet settled (`budget.settled` pending). */
  unsettled?: { callKey: string; usd: number } | null;
  /** The latest approval of the run, if any was requested. Optional: absent in older snapshots. */
  approval?: ApprovalState | null;
  /** The LLM call in flight, if any (tool calls are `inFlight`). Optional: absent in older snapshots. */
  llmCall?: LlmInFlight | null;
  /**
   * Runs of non-graph planners: every finished step with its outcome, in order (the context the
   * react planner builds its messages from and external planners see). Not kept for graph runs.
   */
  transcript?: PlannerStepView[];
  /** The session the run started with (recorded in `run.started`), for non-graph planners with a session. */
  session?: SessionContext | null;
  /** External planners: decisions, memory writes and emitted outputs. */
  planner?: PlannerProgress | null;
  createdAt: string | null;
  updatedAt: string | null;
  /** Journal sequence of the last event folded in (0: none). */
  lastSeq: number;
  eventCount: number;
}

export function initialState(tenantId: string, runId: string): RunState {
  return {
    runId, tenantId, status: 'queued', agent: null, input: null, tools: {}, step: 0, results: {},
    history: [], inFlight: null, cancelRequested: false, output: null, error: null,
    cost: { usd: 0, inputTokens: 0, outputTokens: 0 }, staleSteps: 0, unsettled: null, approval: null, createdAt: null, updatedAt: null,
    lastSeq: 0, eventCount: 0,
  };
}

/** Thrown when a journal does not fit the state machine (a corrupted or forked history). */
export class JournalDivergenceError extends Error {
  override readonly name = 'JournalDivergenceError';
  readonly code = 'journal_divergence';
  constructor(message: string, readonly seq: number) {
    super(`${message} (at journal seq ${seq})`);
  }
}

/**
 * Folds one event into the state. Pure: returns a new state and never reads the clock.
 * Events after a terminal one are a divergence.
 */
export function reduce(s: RunState, e: AnyJournalEvent): RunState {
  if (e.seq <= s.lastSeq) return s; // already folded (replay overlap after a snapshot)
  if (s.status === 'completed' || s.status === 'failed' || s.status === 'cancelled') {
    throw new JournalDivergenceError(`event ${e.type} after terminal status ${s.status}`, e.seq);
  }
  const next: RunState = { ...s, lastSeq: e.seq, eventCount: s.eventCount + 1, updatedAt: e.at };
  switch (e.type) {
    case 'run.created':
      return {
        ...next, agent: e.data.agent, input: e.data.input, sessionId: e.data.sessionId,
        metadata: e.data.metadata, createdAt: e.at, status: 'queued',
      };
    case 'run.started':
      return { ...next, tools: e.data.tools, status: 'running', ...(e.data.session ? { session: e.data.session } : {}) };
    case 'step.started': {
      if (next.inFlight || next.llmCall) throw new JournalDivergenceError(`step ${e.step} started while step ${next.inFlight?.step ?? next.llmCall?.step} is in flight`, e.seq);
      const p = next.planner;
      // the planner's decision this step carries out is acted on now
      const planner = p ? { ...p, pending: null, sinceStep: 0 } : p;
      if (e.data.kind === 'llm') {
        const decision = p?.pending?.kind === 'call_llm' ? p.pending : undefined;
        return {
          ...next, step: e.step, planner,
          llmCall: { step: e.step, callKey: '', phase: 'started', model: e.data.model, ...(e.data.hint ? { hint: e.data.hint } : {}), ...(decision ? { decision } : {}) },
        };
      }
      const callId = e.data.toolCallId ?? e.data.stepId;
      return {
        ...next,
        step: e.step,
        ...(p ? { planner } : {}),
        inFlight: {
          step: e.step, stepId: e.data.stepId, tool: e.data.tool, args: e.data.args, callKey: '', phase: 'started', argsDigest: shortDigest(e.data.args),
          ...(p || e.data.toolCallId !== undefined ? { callId } : {}),
        },
      };
    }
    case 'llm.called': {
      const l = next.llmCall;
      if (!l || l.step !== e.step || l.phase !== 'started') throw new JournalDivergenceError(`llm.called for step ${e.step} without step.started`, e.seq);
      return { ...next, llmCall: { ...l, callKey: e.data.callKey, phase: 'called' } };
    }
    case 'tool.called':
      if (!next.inFlight || next.inFlight.step !== e.step) {
        throw new JournalDivergenceError(`tool.called for step ${e.step} without step.started`, e.seq);
      }
      return { ...next, inFlight: { ...next.inFlight, callKey: e.data.callKey, phase: 'called' } };
    case 'tool.completed':
    case 'tool.failed': {
      const f = next.inFlight;
      if (!f || f.callKey !== e.data.callKey) {
        throw new JournalDivergenceError(`${e.type} for ${e.data.callKey} which is not in flight`, e.seq);
      }
      const ok = e.type === 'tool.completed';
      const results = ok && f.stepId !== undefined ? { ...next.results, [f.stepId]: e.data.result } : next.results;
      const argsDigest = f.argsDigest ?? shortDigest(f.args);
      const outcomeDigest = shortDigest(ok ? { result: e.data.result } : { error: e.data.error.message });
      const repeated = next.history.some((h) => h.argsDigest === argsDigest && h.outcomeDigest === outcomeDigest && h.tool === f.tool);
      // the outcome joins the planner's context (not kept for graph runs: their results are by step id)
      const transcript = next.agent?.planner === 'graph' ? next.transcript : [
        ...(next.transcript ?? []),
        ok
          ? { kind: 'tool' as const, step: f.step, tool: f.tool, args: f.args, ...(f.callId !== undefined ? { id: f.callId } : {}), ok, result: e.data.result }
          : { kind: 'tool' as const, step: f.step, tool: f.tool, args: f.args, ...(f.callId !== undefined ? { id: f.callId } : {}), ok, error: { code: e.data.error.code, message: e.data.error.message } },
      ];
      return {
        ...next,
        ...(transcript ? { transcript } : {}),
        inFlight: null,
        results,
        history: [
          ...next.history,
          ok
            ? { step: f.step, stepId: f.stepId, tool: f.tool, ok, argsDigest, outcomeDigest }
            : { step: f.step, stepId: f.stepId, tool: f.tool, ok, error: e.data.error.message, argsDigest, outcomeDigest },
        ],
        staleSteps: repeated ? (next.staleSteps ?? 0) + 1 : 0,
        unsettled: f.reservedUsd !== undefined ? { callKey: f.callKey, usd: f.reservedUsd } : (next.unsettled ?? null),
      };
    }
    case 'run.cancel_requested':
      return { ...next, cancelRequested: true };
    case 'budget.reserved': {
      const l = next.llmCall;
      if (l && e.data.callKey === callKeyOf(next.runId, l.step)) return { ...next, llmCall: { ...l, reservedUsd: e.data.usd } };
      const f = next.inFlight;
      if (!f || e.data.callKey !== callKeyOf(next.runId, f.step)) return next;
      return { ...next, inFlight: { ...f, reservedUsd: e.data.usd } };
    }
    case 'budget.settled':
      return {
        ...next,
        cost: { ...next.cost, usd: round6(next.cost.usd + e.data.usd) },
        unsettled: next.unsettled?.callKey === e.data.callKey ? null : (next.unsettled ?? null),
      };
    case 'llm.completed': {
      const l = next.llmCall;
      if (!l || l.phase !== 'called' || l.callKey !== e.data.callKey) {
        throw new JournalDivergenceError(`llm.completed for ${e.data.callKey} which is not in flight`, e.seq);
      }
      const usage = { inputTokens: e.data.usage.inputTokens, outputTokens: e.data.usage.outputTokens };
      return {
        ...next,
        llmCall: null,
        transcript: [
          ...(next.transcript ?? []),
          { kind: 'llm', step: l.step, ...(e.data.model !== undefined ? { model: e.data.model } : {}), message: assistantMessageOf(e.data.message), usage },
        ],
        cost: {
          usd: next.cost.usd,
          inputTokens: next.cost.inputTokens + usage.inputTokens,
          outputTokens: next.cost.outputTokens + usage.outputTokens,
        },
        // what the call cost is settled next (or by a recovering worker)
        unsettled: l.reservedUsd !== undefined ? { callKey: l.callKey, usd: e.data.costUsd } : (next.unsettled ?? null),
      };
    }
    case 'planner.decided': {
      const p = next.planner ?? { decisions: 0, pending: null, memory: {}, emitted: [], sinceStep: 0 };
      const d = e.data.decision;
      const emitted = [...p.emitted, ...(e.data.emit ?? []), ...(d.kind === 'emit' ? [d.output] : [])];
      return {
        ...next,
        planner: {
          decisions: p.decisions + 1,
          // an emit is done once recorded; anything else waits to be acted on
          pending: d.kind === 'emit' ? null : d,
          memory: e.data.memory ? { ...p.memory, ...e.data.memory } : p.memory,
          emitted,
          sinceStep: p.sinceStep + 1,
        },
      };
    }
    case 'approval.requested':
      if (next.status !== 'running' || next.inFlight) {
        throw new JournalDivergenceError(`approval.requested while the run is ${next.inFlight ? 'in a step' : next.status}`, e.seq);
      }
      return {
        ...next,
        status: 'waiting_approval',
        approval: { ...e.data, step: e.step, requestedAt: e.at, status: 'pending' },
      };
    case 'approval.granted':
    case 'approval.denied':
    case 'approval.expired': {
      const a = next.approval;
      if (!a || a.status !== 'pending' || a.approvalId !== e.data.approvalId) {
        throw new JournalDivergenceError(`${e.type} for approval ${e.data.approvalId} which is not pending`, e.seq);
      }
      const status: ApprovalStatus = e.type === 'approval.granted' ? 'approved' : e.type === 'approval.denied' ? 'denied' : 'expired';
      const who = e.type === 'approval.expired' ? {} : { by: e.data.by, ...(e.data.reason !== undefined ? { reason: e.data.reason } : {}) };
      return { ...next, status: 'running', approval: { ...a, status, decidedAt: e.at, ...who } };
    }
    case 'run.completed':
      return { ...next, status: 'completed', output: e.data.output, inFlight: null, ...(next.llmCall ? { llmCall: null } : {}) };
    case 'run.failed':
      return { ...next, status: 'failed', error: e.data.error, inFlight: null, ...(next.llmCall ? { llmCall: null } : {}) };
    case 'run.cancelled':
      return { ...next, status: 'cancelled', inFlight: null, ...(next.llmCall ? { llmCall: null } : {}) };
    case 'llm.delta':
      return next;
  }
}

export const foldEvents = (s: RunState, events: readonly AnyJournalEvent[]): RunState => events.reduce(reduce, s);

export const isTerminal = (s: RunState): boolean =>
  s.status === 'completed' || s.status === 'failed' || s.status === 'cancelled';

const round6 = (n: number): number => Math.round(n * 1e6) / 1e6;

/** The assistant message recorded in `llm.completed`, read defensively (it came from a model). */
export function assistantMessageOf(v: JsonValue): AssistantMessage {
  const o = v !== null && typeof v === 'object' && !Array.isArray(v) ? v : {};
  const content = typeof o.content === 'string' ? o.content : null;
  const calls: ChatToolCall[] = [];
  if (Array.isArray(o.tool_calls)) {
    o.tool_calls.forEach((c, i) => {
      if (c === null || typeof c !== 'object' || Array.isArray(c)) return;
      const fn = c.function !== null && typeof c.function === 'object' && !Array.isArray(c.function) ? c.function : {};
      if (typeof fn.name !== 'string') return;
      calls.push({
        id: typeof c.id === 'string' && c.id !== '' ? c.id : `call_${i}`,
        type: 'function',
        function: { name: fn.name, arguments: typeof fn.arguments === 'string' ? fn.arguments : JSON.stringify(fn.arguments ?? {}) },
      });
    });
  }
  return { role: 'assistant', content, ...(calls.length > 0 ? { tool_calls: calls } : {}) };
}

/** 64 bits of the sha256 of the canonical JSON: enough to tell one run's calls and outcomes apart. */
export const shortDigest = (v: JsonValue): string => digestOf(v).slice(0, 16);

/** The run-index row of a state, or null before the run exists. */
export function summaryOf(s: RunState): RunSummary | null {
  if (!s.agent || !s.createdAt) return null;
  return {
    id: s.runId, tenantId: s.tenantId, agent: s.agent.name, agentVersion: s.agent.version,
    ...(s.sessionId ? { sessionId: s.sessionId } : {}),
    status: s.status, ...(s.error ? { error: s.error } : {}), steps: s.step,
    createdAt: s.createdAt, updatedAt: s.updatedAt ?? s.createdAt,
  };
}

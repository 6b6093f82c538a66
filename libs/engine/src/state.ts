import {
  callKey as callKeyOf, digestOf,
  type RunSummary, type AgentSpec, type AnyJournalEvent, type Cost, type JsonValue, type PinnedTool, type RunError, type RunStatus,
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
    cost: { usd: 0, inputTokens: 0, outputTokens: 0 }, staleSteps: 0, unsettled: null, createdAt: null, updatedAt: null,
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
      return { ...next, tools: e.data.tools, status: 'running' };
    case 'step.started':
      if (e.data.kind !== 'tool') return { ...next, step: e.step };
      return {
        ...next,
        step: e.step,
        inFlight: { step: e.step, stepId: e.data.stepId, tool: e.data.tool, args: e.data.args, callKey: '', phase: 'started', argsDigest: shortDigest(e.data.args) },
      };
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
      return {
        ...next,
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
    case 'llm.completed':
      return {
        ...next,
        cost: {
          usd: next.cost.usd,
          inputTokens: next.cost.inputTokens + e.data.usage.inputTokens,
          outputTokens: next.cost.outputTokens + e.data.usage.outputTokens,
        },
      };
    case 'approval.requested':
      return { ...next, status: 'waiting_approval' };
    case 'approval.granted':
    case 'approval.denied':
    case 'approval.expired':
      return { ...next, status: 'running' };
    case 'run.completed':
      return { ...next, status: 'completed', output: e.data.output, inFlight: null };
    case 'run.failed':
      return { ...next, status: 'failed', error: e.data.error, inFlight: null };
    case 'run.cancelled':
      return { ...next, status: 'cancelled', inFlight: null };
    case 'llm.called':
    case 'llm.delta':
      return next;
  }
}

export const foldEvents = (s: RunState, events: readonly AnyJournalEvent[]): RunState => events.reduce(reduce, s);

export const isTerminal = (s: RunState): boolean =>
  s.status === 'completed' || s.status === 'failed' || s.status === 'cancelled';

const round6 = (n: number): number => Math.round(n * 1e6) / 1e6;

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

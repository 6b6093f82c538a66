import {
  approvalArgsHash, callKey, DEFAULT_APPROVAL_TIMEOUT_SECONDS, digestOf, isBuiltinPlanner,
  type AgentSpec, type AnyNewJournalEvent, type CommandMap, type InferenceChatResponse, type JournalEventData, type JournalEventType,
  type JsonValue, type NewJournalEvent, type PinnedTool, type PlannerDecidedData, type PlannerRequest, type RiskTier, type RunError, type SessionContext,
} from '#libs/contracts';
import type { LlmRequest } from './llm.js';
import { plannerFor } from './planner.js';
import { reactRequest } from './react.js';
import { isTerminal, shortDigest, type ApprovalState, type LlmInFlight, type RunState } from './state.js';
import { plannerRequestOf } from './view.js';

/** Work the orchestrator must do outside the engine; its outcome comes back as an event. */
export type Effect =
  /**
   * Pin the agent's tools (`run.started`). With `sessionId` (runs of non-graph planners that have
   * a session), also read the session's turns and planner memory into `run.started.session`.
   */
  | { kind: 'resolve_tools'; refs: string[]; sessionId?: string }
  | { kind: 'dispatch_tool'; command: CommandMap['tool.execute'] }
  /**
   * Call the LLM (`inference.chat`) for the step in flight, with `callKey` as the budget and
   * idempotency key. Its reply comes back as `llmCompletedEvent`. Made by the worker driving the
   * run, inline: `llm.called` is durable before the call.
   */
  | { kind: 'call_llm'; step: number; callKey: string; request: LlmRequest }
  /** Ask the run's external planner (planner.v1) for its next decision; record it with `plannerDecidedEvent`. */
  | { kind: 'ask_planner'; request: PlannerRequest }
  /**
   * Arm the durable timer of a pending approval (idempotent: the timer's message id is the
   * approval id). When it fires at `expiresAt` with no decision recorded, approvalExpiredEvent.
   */
  | { kind: 'schedule_approval_timeout'; timer: CommandMap['approval.timeout'] };

export interface Decision {
  /** Events to append, in order, each fenced on the one before. */
  events: AnyNewJournalEvent[];
  /** Effects to perform after the events are durable. */
  effects: Effect[];
}

export interface DecideOptions {
  /** The clock reading to stamp on new events (read by the caller, recorded in the journal). */
  now: string;
  globalMaxSteps: number;
  /**
   * Re-send the dispatch of a step already marked `called`. Set when the state was recovered
   * from the journal rather than held by this worker: the previous worker may have died between
   * the append and the publish. Safe because dispatches are idempotent on the call key.
   */
  redispatch: boolean;
  /** Loop detection thresholds; DEFAULT_LOOP_DETECTION when absent. */
  loop?: LoopDetection;
}

/**
 * When a run is going round in circles. A run fails `loop_detected` when its planner asks for a
 * tool call and either
 * - `maxIdenticalCalls`: the same tool with the same (canonical) arguments was already called that
 *   many times in a row just before, or
 * - `noProgressSteps`: that many steps in a row each repeated an earlier call and got an outcome
 *   already seen for it (no new information; catches A, B, A, B cycles).
 * 0 turns a check off.
 */
export interface LoopDetection {
  maxIdenticalCalls: number;
  noProgressSteps: number;
}

/** The defaults (also the defaults of AGENTMESH_LOOP_MAX_IDENTICAL_CALLS / AGENTMESH_LOOP_NO_PROGRESS_STEPS). */
export const DEFAULT_LOOP_DETECTION: Readonly<LoopDetection> = Object.freeze({ maxIdenticalCalls: 3, noProgressSteps: 8 });

const NOTHING: Decision = { events: [], effects: [] };

function event<T extends JournalEventType>(s: RunState, now: string, type: T, step: number, data: JournalEventData[T]): NewJournalEvent<T> {
  return { runId: s.runId, tenantId: s.tenantId, type, at: now, step, data };
}

function dispatch(s: RunState, step: number, key: string, tool: PinnedTool, args: CommandMap['tool.execute']['args']): Effect {
  const a = s.approval;
  const approved = a && a.status === 'approved' && a.callKey === key ? { approval: { approvalId: a.approvalId, argsHash: a.argsHash } } : {};
  return {
    kind: 'dispatch_tool',
    command: { tenantId: s.tenantId, runId: s.runId, step, callKey: key, tool, args, ...(s.sessionId ? { sessionId: s.sessionId } : {}), ...approved },
  };
}

/**
 * Whether a call of a tool of this tier waits for a human: `irreversible` always; other tiers
 * when the agent lists them in `limits.requireApprovalFor` (e.g. `['write']`). The tenant policy's
 * say (`tools.run`) arrives separately, as `requireApproval` on the pinned tool.
 */
export function requiresApproval(agent: AgentSpec, tier: RiskTier): boolean {
  return tier === 'irreversible' || (agent.limits.requireApprovalFor ?? []).includes(tier);
}

/** The id of the approval of one call: derived from its call key and binding, so replay decides the same id. */
export const approvalIdOf = (key: string, argsHash: string): string => `apr_${digestOf({ callKey: key, argsHash }).slice(0, 32)}`;

function approvalTimer(s: RunState, a: Pick<ApprovalState, 'approvalId' | 'expiresAt'>): Effect {
  return { kind: 'schedule_approval_timeout', timer: { tenantId: s.tenantId, runId: s.runId, approvalId: a.approvalId, expiresAt: a.expiresAt } };
}

/** Asks a human to allow the call of `step`: the run pauses (`waiting_approval`) until a decision or expiry. */
function requestApproval(s: RunState, opts: DecideOptions, agent: AgentSpec, step: number, key: string, tool: PinnedTool, args: JsonValue, argsHash: string): Decision {
  const seconds = agent.limits.approvalTimeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS;
  // from the clock reading recorded as the event's `at`: replay computes the same instant
  const expiresAt = new Date(Date.parse(opts.now) + seconds * 1000).toISOString();
  const approvalId = approvalIdOf(key, argsHash);
  return {
    events: [event(s, opts.now, 'approval.requested', step, {
      approvalId, callKey: key, tool: tool.name, version: tool.version, args, argsHash, riskTier: tool.riskTier, expiresAt,
    })],
    effects: [approvalTimer(s, { approvalId, expiresAt })],
  };
}

/** The terminal event that fails the run. */
export function failEvent(s: RunState, now: string, error: RunError): AnyNewJournalEvent {
  return event(s, now, 'run.failed', s.step, { error, cost: s.cost });
}

/**
 * Decides what happens next for a run. Pure: the same state and options give the same decision,
 * which is what makes recovery and replay safe.
 */
export function decide(s: RunState, opts: DecideOptions): Decision {
  if (!s.agent || isTerminal(s)) return NOTHING;
  const agent = s.agent;
  if (s.status === 'queued') {
    const session = s.sessionId && usesSession(agent) ? { sessionId: s.sessionId } : {};
    return { events: [], effects: [{ kind: 'resolve_tools', refs: agent.tools, ...session }] };
  }

  const f = s.inFlight;
  if (f) {
    const pinned = s.tools[f.tool];
    if (f.phase === 'started') {
      const key = callKey(s.runId, f.step);
      return {
        events: [event(s, opts.now, 'tool.called', f.step, { callKey: key, tool: pinned.name, version: pinned.version, riskTier: pinned.riskTier })],
        effects: [dispatch(s, f.step, key, pinned, f.args)],
      };
    }
    return opts.redispatch ? { events: [], effects: [dispatch(s, f.step, f.callKey, pinned, f.args)] } : NOTHING;
  }
  const l = s.llmCall;
  if (l) {
    const request = llmRequestOf(s, agent, l);
    if (l.phase === 'started') {
      const key = callKey(s.runId, l.step);
      return {
        events: [event(s, opts.now, 'llm.called', l.step, { callKey: key, model: l.model })],
        effects: [{ kind: 'call_llm', step: l.step, callKey: key, request }],
      };
    }
    // the call was made and its reply is not recorded: only a worker that took over makes it again
    return opts.redispatch ? { events: [], effects: [{ kind: 'call_llm', step: l.step, callKey: l.callKey, request }] } : NOTHING;
  }
  if (s.cancelRequested) return { events: [event(s, opts.now, 'run.cancelled', s.step, { reason: 'cancelled by request', cost: s.cost })], effects: [] };
  const a = s.approval;
  if (s.status === 'waiting_approval') {
    // waits for a decision or the timer; a recovering worker arms the timer again (the previous
    // one may have died between appending approval.requested and arming it)
    return opts.redispatch && a?.status === 'pending' ? { events: [], effects: [approvalTimer(s, a)] } : NOTHING;
  }
  if (a?.status === 'denied') {
    const why = a.reason ? `: ${a.reason}` : '';
    return { events: [failEvent(s, opts.now, { code: 'approval_denied', message: `the call of ${a.tool}@${a.version} (step ${a.step}) was denied${why}` })], effects: [] };
  }
  if (a?.status === 'expired') {
    return { events: [failEvent(s, opts.now, { code: 'approval_expired', message: `nobody decided on the call of ${a.tool}@${a.version} (step ${a.step}) before ${a.expiresAt}` })], effects: [] };
  }

  const planner = plannerFor(agent.planner);
  if (!planner) {
    return { events: [failEvent(s, opts.now, { code: 'planner_error', message: `planner "${agent.planner}" is not available` })], effects: [] };
  }
  const action = planner.next(s, agent);
  const cap = Math.min(agent.limits.maxSteps ?? Infinity, opts.globalMaxSteps);
  switch (action.kind) {
    case 'ask_planner':
      return { events: [], effects: [{ kind: 'ask_planner', request: plannerRequestOf(s, agent, Number.isFinite(cap) ? cap : opts.globalMaxSteps) }] };
    case 'call_llm': {
      if (s.step >= cap) {
        return { events: [failEvent(s, opts.now, { code: 'step_limit', message: `the run reached its step limit of ${cap}` })], effects: [] };
      }
      const unknown = action.request.tools.filter((t) => !s.tools[t]);
      if (unknown.length > 0) {
        return { events: [failEvent(s, opts.now, { code: 'planner_error', message: `the LLM call offers tools that are not the agent's: ${unknown.join(', ')}` })], effects: [] };
      }
      const step = s.step + 1;
      const key = callKey(s.runId, step);
      return {
        events: [
          event(s, opts.now, 'step.started', step, { kind: 'llm', model: action.model, ...(action.hint ? { hint: action.hint } : {}) }),
          event(s, opts.now, 'llm.called', step, { callKey: key, model: action.model }),
        ],
        effects: [{ kind: 'call_llm', step, callKey: key, request: action.request }],
      };
    }
    case 'finish':
      return { events: [event(s, opts.now, 'run.completed', s.step, { output: action.output, cost: s.cost })], effects: [] };
    case 'fail':
      return { events: [failEvent(s, opts.now, action.error)], effects: [] };
    case 'call_tool': {
      if (s.step >= cap) {
        return { events: [failEvent(s, opts.now, { code: 'step_limit', message: `the run reached its step limit of ${cap}` })], effects: [] };
      }
      const pinned = s.tools[action.tool];
      if (!pinned) {
        return { events: [failEvent(s, opts.now, { code: 'invalid_input', message: `tool "${action.tool}" is not one of the agent's tools` })], effects: [] };
      }
      const loop = loopIn(s, action.tool, action.args, opts.loop ?? DEFAULT_LOOP_DETECTION);
      if (loop) return { events: [failEvent(s, opts.now, { code: 'loop_detected', message: loop })], effects: [] };
      const step = s.step + 1;
      const key = callKey(s.runId, step);
      // the tenant policy's verdict is recorded on the pinned tool (run.started): never asked again here
      if (requiresApproval(agent, pinned.riskTier) || action.requireApproval || pinned.requireApproval === true) {
        // an approval covers exactly one call: this step's key, this tool version, these args
        const argsHash = approvalArgsHash(pinned, action.args);
        const granted = a?.status === 'approved' && a.callKey === key && a.argsHash === argsHash;
        if (!granted) return requestApproval(s, opts, agent, step, key, pinned, action.args, argsHash);
      }
      return {
        events: [
          event(s, opts.now, 'step.started', step, {
            kind: 'tool', stepId: action.stepId, tool: pinned.name, args: action.args, ...(action.toolCallId !== undefined ? { toolCallId: action.toolCallId } : {}),
          }),
          event(s, opts.now, 'tool.called', step, { callKey: key, tool: pinned.name, version: pinned.version, riskTier: pinned.riskTier }),
        ],
        effects: [dispatch(s, step, key, pinned, action.args)],
      };
    }
  }
}

/** Why the next call would be a loop, or null. */
function loopIn(s: RunState, tool: string, args: CommandMap['tool.execute']['args'], l: LoopDetection): string | null {
  const prev = s.history[s.history.length - 1];
  if (l.maxIdenticalCalls > 0 && s.history.length >= l.maxIdenticalCalls && prev.tool === tool) {
    const digest = shortDigest(args);
    let same = 0;
    for (let i = s.history.length - 1; i >= 0 && same < l.maxIdenticalCalls; i--) {
      const h = s.history[i];
      if (h.tool !== tool || h.argsDigest !== digest) break;
      same++;
    }
    if (same >= l.maxIdenticalCalls) {
      return `the run asked for ${tool} with the same arguments ${same + 1} times in a row (at most ${l.maxIdenticalCalls} allowed)`;
    }
  }
  if (l.noProgressSteps > 0 && (s.staleSteps ?? 0) >= l.noProgressSteps) {
    return `no progress in the last ${s.staleSteps} steps: each repeated an earlier call and got the same outcome`;
  }
  return null;
}

/** The event recording a reservation granted for the call about to be made (step `step`). */
export function budgetReservedEvent(s: RunState, now: string, step: number, key: string, usd: number): AnyNewJournalEvent {
  return event(s, now, 'budget.reserved', step, { callKey: key, usd });
}

/** The event recording what a call was charged. */
export function budgetSettledEvent(s: RunState, now: string, step: number, key: string, usd: number): AnyNewJournalEvent {
  return event(s, now, 'budget.settled', step, { callKey: key, usd });
}

/** The terminal event of a run stopped by its budget (a refused reservation or the tenant circuit breaker). */
export function budgetExceededEvent(s: RunState, now: string, message: string): AnyNewJournalEvent {
  return failEvent(s, now, { code: 'budget_exceeded', message });
}

/** The event recording the outcome of `resolve_tools` (with the session read, when it asked for one). */
export function toolsResolvedEvent(s: RunState, now: string, tools: Record<string, PinnedTool>, session?: SessionContext): AnyNewJournalEvent {
  return event(s, now, 'run.started', 0, session ? { tools, session } : { tools });
}

/** The event recording a tool's outcome, or null when it is not the call in flight (a duplicate). */
export function toolOutcomeEvent(s: RunState, now: string, r: CommandMap['tool.result']): AnyNewJournalEvent | null {
  if (!s.inFlight || s.inFlight.callKey !== r.callKey || s.inFlight.phase !== 'called') return null;
  return r.ok
    ? event(s, now, 'tool.completed', r.step, { callKey: r.callKey, result: r.result, durationMs: r.durationMs, ...(r.resultRef ? { resultRef: r.resultRef } : {}) })
    : event(s, now, 'tool.failed', r.step, { callKey: r.callKey, error: { code: r.error.code, message: r.error.message, ...(r.error.details !== undefined ? { details: r.error.details } : {}) }, durationMs: r.durationMs });
}

/** The event recording a cancel request: immediate when nothing is in flight. */
export function cancelEvent(s: RunState, now: string, reason?: string): AnyNewJournalEvent | null {
  if (!s.agent || isTerminal(s) || s.cancelRequested) return null;
  return s.inFlight || s.llmCall
    ? event(s, now, 'run.cancel_requested', s.step, { reason })
    : event(s, now, 'run.cancelled', s.step, { reason, cost: s.cost });
}

/** The LLM request of the call in flight: the external planner's recorded one, or react's (the state has not moved since it was decided). */
function llmRequestOf(s: RunState, agent: AgentSpec, l: LlmInFlight): LlmRequest {
  const d = l.decision;
  if (!d) return reactRequest(s, agent, l.hint ?? 'hard');
  return {
    messages: d.messages, tools: d.tools ?? [],
    ...(l.model !== 'auto' ? { model: l.model } : {}), ...(d.hint ? { hint: d.hint } : {}),
    ...(d.maxTokens !== undefined ? { maxTokens: d.maxTokens } : {}), ...(d.temperature !== undefined ? { temperature: d.temperature } : {}),
  };
}

/** Whether the run's planner keeps a session (turns and memory): every planner but `graph`. */
export const usesSession = (agent: AgentSpec): boolean => agent.planner !== 'graph';

/** Whether the agent's planner is external (planner.v1). */
export const isExternalPlanner = (agent: AgentSpec): boolean => !isBuiltinPlanner(agent.planner);

/**
 * The event recording the LLM's reply to the call in flight, or null when `callKey` is not that
 * call (a stale reply).
 */
export function llmCompletedEvent(s: RunState, now: string, key: string, r: Pick<InferenceChatResponse, 'message' | 'usage' | 'costUsd' | 'model' | 'replica' | 'finishReason'>): AnyNewJournalEvent | null {
  const l = s.llmCall;
  if (!l || l.phase !== 'called' || l.callKey !== key) return null;
  const message = { role: 'assistant', content: r.message.content, ...(r.message.tool_calls && r.message.tool_calls.length > 0 ? { tool_calls: r.message.tool_calls } : {}) };
  return event(s, now, 'llm.completed', l.step, {
    callKey: key, message: message as unknown as JsonValue,
    usage: { inputTokens: r.usage.inputTokens, outputTokens: r.usage.outputTokens }, costUsd: r.costUsd,
    model: r.model, replica: r.replica, finishReason: r.finishReason,
  });
}

/** A piece of streamed text of the call `key` (LLM tokens, or a planner's partial output). */
export function llmDeltaEvent(s: RunState, now: string, key: string, text: string): AnyNewJournalEvent {
  return event(s, now, 'llm.delta', s.llmCall?.step ?? s.step, { callKey: key, text });
}

/** The event recording an external planner's answer (before anything is acted on). */
export function plannerDecidedEvent(s: RunState, now: string, data: PlannerDecidedData): AnyNewJournalEvent {
  return event(s, now, 'planner.decided', s.step, data);
}

/** The first event of a run. */
export function createdEvent(s: RunState, now: string, cmd: CommandMap['run.start']): AnyNewJournalEvent {
  return event(s, now, 'run.created', 0, {
    agent: cmd.agent, input: cmd.input,
    ...(cmd.sessionId ? { sessionId: cmd.sessionId } : {}),
    ...(cmd.metadata ? { metadata: cmd.metadata } : {}),
  });
}

/**
 * The event recording a human's decision, or null when it changes nothing (no such pending
 * approval: already decided or expired, or the run ended). A decision at or after `expiresAt`
 * loses to the timeout: it records `approval.expired` instead.
 */
export function approvalDecisionEvent(s: RunState, now: string, d: CommandMap['approval.decide']): AnyNewJournalEvent | null {
  const a = pendingApproval(s, d.approvalId);
  if (!a) return null;
  if (Date.parse(now) >= Date.parse(a.expiresAt)) return event(s, now, 'approval.expired', a.step, { approvalId: a.approvalId });
  const data = { approvalId: a.approvalId, by: d.by, ...(d.reason !== undefined && d.reason !== '' ? { reason: d.reason } : {}) };
  return d.decision === 'approve' ? event(s, now, 'approval.granted', a.step, data) : event(s, now, 'approval.denied', a.step, data);
}

/** The event expiring a pending approval whose time is up, or null (not pending, or not yet due). */
export function approvalExpiredEvent(s: RunState, now: string, approvalId: string): AnyNewJournalEvent | null {
  const a = pendingApproval(s, approvalId);
  if (!a || Date.parse(now) < Date.parse(a.expiresAt)) return null;
  return event(s, now, 'approval.expired', a.step, { approvalId: a.approvalId });
}

function pendingApproval(s: RunState, approvalId: string): ApprovalState | null {
  const a = s.approval;
  return a && s.status === 'waiting_approval' && a.status === 'pending' && a.approvalId === approvalId ? a : null;
}

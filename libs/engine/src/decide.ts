import {
  callKey, type AnyNewJournalEvent, type CommandMap, type JournalEventData, type JournalEventType,
  type NewJournalEvent, type PinnedTool, type RunError,
} from '#libs/contracts';
import { plannerFor } from './planner.js';
import { isTerminal, shortDigest, type RunState } from './state.js';

/** Work the orchestrator must do outside the engine; its outcome comes back as an event. */
export type Effect =
  | { kind: 'resolve_tools'; refs: string[] }
  | { kind: 'dispatch_tool'; command: CommandMap['tool.execute'] };

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
  return { kind: 'dispatch_tool', command: { tenantId: s.tenantId, runId: s.runId, step, callKey: key, tool, args } };
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
  if (s.status === 'queued') return { events: [], effects: [{ kind: 'resolve_tools', refs: agent.tools }] };

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
  if (s.cancelRequested) return { events: [event(s, opts.now, 'run.cancelled', s.step, { reason: 'cancelled by request', cost: s.cost })], effects: [] };
  if (s.status === 'waiting_approval') return NOTHING;

  const planner = plannerFor(agent.planner);
  if (!planner) {
    return { events: [failEvent(s, opts.now, { code: 'planner_error', message: `planner "${agent.planner}" is not available` })], effects: [] };
  }
  const action = planner.next(s, agent);
  switch (action.kind) {
    case 'finish':
      return { events: [event(s, opts.now, 'run.completed', s.step, { output: action.output, cost: s.cost })], effects: [] };
    case 'fail':
      return { events: [failEvent(s, opts.now, action.error)], effects: [] };
    case 'call_tool': {
      const cap = Math.min(agent.limits.maxSteps ?? Infinity, opts.globalMaxSteps);
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
      return {
        events: [
          event(s, opts.now, 'step.started', step, { kind: 'tool', stepId: action.stepId, tool: pinned.name, args: action.args }),
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

/** The event recording the outcome of `resolve_tools`. */
export function toolsResolvedEvent(s: RunState, now: string, tools: Record<string, PinnedTool>): AnyNewJournalEvent {
  return event(s, now, 'run.started', 0, { tools });
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
  return s.inFlight
    ? event(s, now, 'run.cancel_requested', s.step, { reason })
    : event(s, now, 'run.cancelled', s.step, { reason, cost: s.cost });
}

/** The first event of a run. */
export function createdEvent(s: RunState, now: string, cmd: CommandMap['run.start']): AnyNewJournalEvent {
  return event(s, now, 'run.created', 0, {
    agent: cmd.agent, input: cmd.input,
    ...(cmd.sessionId ? { sessionId: cmd.sessionId } : {}),
    ...(cmd.metadata ? { metadata: cmd.metadata } : {}),
  });
}

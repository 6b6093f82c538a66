import type { AnyJournalEvent } from '#libs/contracts';
import { decide, type LoopDetection } from './decide.js';
import { initialState, reduce, type RunState } from './state.js';

export interface ReplayReport {
  ok: boolean;
  eventsChecked: number;
  decisionsChecked: number;
  state: RunState;
  divergence?: { seq: number; recorded: { type: string; step: number; data: unknown }; decided: { type: string; step: number; data: unknown } | null };
}

/** Events that record something from outside the engine (a command, an I/O result). */
function isOutsideResult(e: AnyJournalEvent, s: RunState): boolean {
  switch (e.type) {
    case 'run.created': case 'run.started': case 'tool.completed': case 'tool.failed':
    case 'run.cancel_requested': case 'approval.granted': case 'approval.denied': case 'approval.expired':
    case 'llm.delta': case 'llm.completed': case 'budget.reserved': case 'budget.settled': case 'planner.decided':
      return true;
    case 'run.cancelled':
      return !s.cancelRequested; // an immediate cancel comes from a command
    case 'run.failed':
      // failing to resolve tools at start is an I/O outcome; so is a refused budget reservation, and
      // an LLM call the model or router refused for good (the call was in flight)
      return s.status === 'queued' || e.data.error.code === 'budget_exceeded' || !!s.llmCall;
    default:
      return false;
  }
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * Re-runs the engine's decisions against a recorded journal: every event the engine wrote must be
 * the one it decides now. The regression check before shipping a new orchestrator.
 */
export function replayJournal(events: readonly AnyJournalEvent[], opts: { globalMaxSteps: number; loop?: LoopDetection }): ReplayReport {
  if (events.length === 0) throw new Error('empty journal');
  let s = initialState(events[0].tenantId, events[0].runId);
  let decisions = 0;
  for (const e of events) {
    if (!isOutsideResult(e, s)) {
      decisions++;
      const d = decide(s, { now: e.at, globalMaxSteps: opts.globalMaxSteps, redispatch: false, loop: opts.loop });
      const first = d.events[0];
      if (!first || first.type !== e.type || first.step !== e.step || !same(first.data, e.data)) {
        return {
          ok: false, eventsChecked: decisions, decisionsChecked: decisions, state: s,
          divergence: {
            seq: e.seq,
            recorded: { type: e.type, step: e.step, data: e.data },
            decided: first ? { type: first.type, step: first.step, data: first.data } : null,
          },
        };
      }
    }
    s = reduce(s, e);
  }
  return { ok: true, eventsChecked: events.length, decisionsChecked: decisions, state: s };
}

import { describe, expect, it } from '@jest/globals';
import { callKey, type AgentSpec, type AnyJournalEvent, type AnyNewJournalEvent, type JsonValue } from '#libs/contracts';
import {
  budgetExceededEvent, budgetReservedEvent, budgetSettledEvent, createdEvent, decide, DEFAULT_LOOP_DETECTION, toolOutcomeEvent, toolsResolvedEvent,
  type DecideOptions,
} from './decide.js';
import { initialState, reduce, type RunState } from './state.js';
import { replayJournal } from './replay.js';

const TOOLS = { echo: { name: 'echo', version: '1', riskTier: 'read' as const }, poll: { name: 'poll', version: '1', riskTier: 'read' as const } };
const OPTS: DecideOptions = { now: '2026-01-01T00:00:00.000Z', globalMaxSteps: 200, redispatch: false };
const graph = (steps: Array<{ tool: string; args: JsonValue }>): AgentSpec => ({
  name: 'a', version: '1', planner: 'graph', tools: ['echo', 'poll'], limits: {},
  steps: steps.map((s, i) => ({ id: `s${i}`, tool: s.tool, args: s.args as Record<string, JsonValue> })),
});

/** Runs a graph to its end in memory; `result(step)` answers each call. */
function runGraph(agent: AgentSpec, result: (tool: string, args: JsonValue, n: number) => JsonValue, opts: DecideOptions = OPTS) {
  let s: RunState = initialState('acme', 'run_01HZZZZZZZZZZZZZZZZZZZZZZZ');
  const journal: AnyJournalEvent[] = [];
  const append = (e: AnyNewJournalEvent | null) => {
    if (!e) return;
    const full = { ...e, seq: journal.length + 1 } as AnyJournalEvent;
    journal.push(full);
    s = reduce(s, full);
  };
  append(createdEvent(s, OPTS.now, { tenantId: 'acme', runId: s.runId, agent, input: {} }));
  append(toolsResolvedEvent(s, OPTS.now, TOOLS));
  for (let i = 0; i < 500 && s.status === 'running'; i++) {
    const d = decide(s, opts);
    d.events.forEach(append);
    const f = s.inFlight;
    if (f) append(toolOutcomeEvent(s, OPTS.now, { tenantId: 'acme', runId: s.runId, step: f.step, callKey: f.callKey, durationMs: 1, ok: true, result: result(f.tool, f.args, f.step) }));
  }
  return { s, journal };
}

describe('loop detection', () => {
  it('allows the same call up to maxIdenticalCalls times in a row and fails the next with loop_detected', () => {
    const same = Array.from({ length: 6 }, () => ({ tool: 'echo', args: { text: 'again' } }));
    const { s } = runGraph(graph(same), (_t, a) => a);
    expect(DEFAULT_LOOP_DETECTION.maxIdenticalCalls).toBe(3);
    expect(s.status).toBe('failed');
    expect(s.error?.code).toBe('loop_detected');
    expect(s.error?.message).toContain('echo with the same arguments 4 times in a row');
    expect(s.step).toBe(3);
  });

  it('compares arguments canonically: key order does not make a call different', () => {
    const steps = [{ tool: 'echo', args: { a: 1, b: 2 } }, { tool: 'echo', args: { b: 2, a: 1 } }, { tool: 'echo', args: { a: 1, b: 2 } }, { tool: 'echo', args: { b: 2, a: 1 } }];
    expect(runGraph(graph(steps), () => ({})).s.error?.code).toBe('loop_detected');
  });

  it('lets the same tool run with changing arguments, and identical calls that are not in a row', () => {
    const steps = Array.from({ length: 12 }, (_, i) => ({ tool: 'echo', args: { i } }));
    expect(runGraph(graph(steps), () => ({})).s.status).toBe('completed');
    const apart: Array<{ tool: string; args: JsonValue }> = [{ tool: 'echo', args: { x: 1 } }, { tool: 'poll', args: {} }, { tool: 'echo', args: { x: 1 } }, { tool: 'poll', args: { y: 1 } }, { tool: 'echo', args: { x: 1 } }];
    expect(runGraph(graph(apart), (_t, _a, n) => ({ n })).s.status).toBe('completed');
  });

  it('fails a run that cycles without new information for noProgressSteps steps (A, B, A, B, ...)', () => {
    const cycle = Array.from({ length: 20 }, (_, i) => ({ tool: i % 2 ? 'poll' : 'echo', args: { k: i % 2 } }));
    const { s } = runGraph(graph(cycle), (t) => ({ t }), { ...OPTS, loop: { maxIdenticalCalls: 3, noProgressSteps: 4 } });
    expect(s.error?.code).toBe('loop_detected');
    expect(s.error?.message).toContain('no progress in the last 4 steps');
    expect(s.step).toBe(6); // 2 new calls, then 4 repeats with the same outcomes
  });

  it('counts a repeated call with a new outcome as progress (polling until something changes)', () => {
    const cycle = Array.from({ length: 20 }, (_, i) => ({ tool: i % 2 ? 'poll' : 'echo', args: { k: i % 2 } }));
    const { s } = runGraph(graph(cycle), (_t, _a, n) => ({ n }), { ...OPTS, loop: { maxIdenticalCalls: 3, noProgressSteps: 4 } });
    expect(s.status).toBe('completed');
  });

  it('turns each check off with 0', () => {
    const same = Array.from({ length: 6 }, () => ({ tool: 'echo', args: { text: 'again' } }));
    expect(runGraph(graph(same), (_t, a) => a, { ...OPTS, loop: { maxIdenticalCalls: 0, noProgressSteps: 0 } }).s.status).toBe('completed');
  });

  it('replays a run that ended in loop_detected without divergence', () => {
    const same = Array.from({ length: 5 }, () => ({ tool: 'echo', args: { text: 'x' } }));
    const { journal } = runGraph(graph(same), (_t, a) => a);
    expect(replayJournal(journal, { globalMaxSteps: 200 }).ok).toBe(true);
  });
});

describe('budget events in the run state', () => {
  const agent = graph([{ tool: 'echo', args: { i: 1 } }, { tool: 'echo', args: { i: 2 } }]);
  const start = () => {
    let s: RunState = initialState('acme', 'run_01HZZZZZZZZZZZZZZZZZZZZZZZ');
    let seq = 0;
    const append = (e: AnyNewJournalEvent | null) => { if (e) s = reduce(s, { ...e, seq: ++seq } as AnyJournalEvent); };
    append(createdEvent(s, OPTS.now, { tenantId: 'acme', runId: s.runId, agent, input: {} }));
    append(toolsResolvedEvent(s, OPTS.now, TOOLS));
    return { get s() { return s; }, append };
  };

  it('marks the call in flight as reserved, then as unsettled when it finishes, until budget.settled adds its cost', () => {
    const r = start();
    const d = decide(r.s, OPTS);
    r.append(d.events[0]); // step.started
    const key = callKey(r.s.runId, 1);
    r.append(budgetReservedEvent(r.s, OPTS.now, 1, key, 0.25));
    expect(r.s.inFlight?.reservedUsd).toBe(0.25);
    r.append(d.events[1]); // tool.called
    r.append(toolOutcomeEvent(r.s, OPTS.now, { tenantId: 'acme', runId: r.s.runId, step: 1, callKey: key, durationMs: 1, ok: true, result: {} }));
    expect(r.s.unsettled).toEqual({ callKey: key, usd: 0.25 });
    r.append(budgetSettledEvent(r.s, OPTS.now, 1, key, 0.2));
    expect(r.s.unsettled).toBeNull();
    expect(r.s.cost.usd).toBe(0.2);
  });

  it('replays a journal with reservations and settlements without divergence', () => {
    const journal: AnyJournalEvent[] = [];
    let s: RunState = initialState('acme', 'run_01HZZZZZZZZZZZZZZZZZZZZZZZ');
    const push = (e: AnyNewJournalEvent | null) => { if (!e) return; const full = { ...e, seq: journal.length + 1 } as AnyJournalEvent; journal.push(full); s = reduce(s, full); };
    push(createdEvent(s, OPTS.now, { tenantId: 'acme', runId: s.runId, agent, input: {} }));
    push(toolsResolvedEvent(s, OPTS.now, TOOLS));
    for (let step = 1; step <= 2; step++) {
      const d = decide(s, OPTS);
      const key = callKey(s.runId, step);
      push(d.events[0]);
      push(budgetReservedEvent(s, OPTS.now, step, key, 0.25));
      push(d.events[1]);
      push(toolOutcomeEvent(s, OPTS.now, { tenantId: 'acme', runId: s.runId, step, callKey: key, durationMs: 1, ok: true, result: { step } }));
      push(budgetSettledEvent(s, OPTS.now, step, key, 0.25));
    }
    push(decide(s, OPTS).events[0]);
    expect(s).toMatchObject({ status: 'completed', cost: { usd: 0.5 }, unsettled: null });
    const report = replayJournal(journal, { globalMaxSteps: 200 });
    expect(report.ok).toBe(true);
    expect(report.state.cost.usd).toBe(0.5);
  });

  it('ignores a reservation for another call than the one in flight', () => {
    const r = start();
    r.append(decide(r.s, OPTS).events[0]);
    r.append(budgetReservedEvent(r.s, OPTS.now, 1, 'other:1:0', 1));
    expect(r.s.inFlight?.reservedUsd).toBeUndefined();
  });

  it('a free call leaves nothing to settle', () => {
    const r = start();
    const d = decide(r.s, OPTS);
    d.events.forEach(r.append);
    r.append(toolOutcomeEvent(r.s, OPTS.now, { tenantId: 'acme', runId: r.s.runId, step: 1, callKey: callKey(r.s.runId, 1), durationMs: 1, ok: true, result: {} }));
    expect(r.s.unsettled).toBeNull();
  });

  it('treats a budget_exceeded failure as an outside result when replaying', () => {
    const journal: AnyJournalEvent[] = [];
    let s: RunState = initialState('acme', 'run_01HZZZZZZZZZZZZZZZZZZZZZZZ');
    const push = (e: AnyNewJournalEvent) => { const full = { ...e, seq: journal.length + 1 } as AnyJournalEvent; journal.push(full); s = reduce(s, full); };
    push(createdEvent(s, OPTS.now, { tenantId: 'acme', runId: s.runId, agent, input: {} }));
    push(toolsResolvedEvent(s, OPTS.now, TOOLS));
    push(budgetExceededEvent(s, OPTS.now, 'the circuit breaker stopped the run'));
    expect(s.error?.code).toBe('budget_exceeded');
    expect(replayJournal(journal, { globalMaxSteps: 200 }).ok).toBe(true);
  });
});

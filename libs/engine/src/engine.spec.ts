import { describe, expect, it } from '@jest/globals';
import type { AgentSpec, AnyJournalEvent, AnyNewJournalEvent, JsonValue } from '#libs/contracts';
import { cancelEvent, createdEvent, decide, toolOutcomeEvent, toolsResolvedEvent } from './decide.js';
import { initialState, JournalDivergenceError, reduce, type RunState } from './state.js';
import { replayJournal } from './replay.js';

const AGENT: AgentSpec = {
  name: 'hello', version: '1', planner: 'graph', tools: ['echo', 'upper@2'], limits: {},
  steps: [
    { id: 'greet', tool: 'echo', args: { text: 'Hello, {{input.name}}!' } },
    { id: 'shout', tool: 'upper', args: { text: '{{steps.greet.result.text}}', n: '{{input.n}}' } },
  ],
};
const TOOLS = { echo: { name: 'echo', version: '1', riskTier: 'read' as const }, upper: { name: 'upper', version: '2', riskTier: 'read' as const } };
const OPTS = { now: '2026-01-01T00:00:00.000Z', globalMaxSteps: 200, redispatch: false };

/** A tiny in-memory journal: appends assign sequences and fold into the state. */
class Run {
  s: RunState = initialState('acme', 'run_01HZZZZZZZZZZZZZZZZZZZZZZZ');
  journal: AnyJournalEvent[] = [];
  append(e: AnyNewJournalEvent | null) {
    if (!e) return;
    const full = { ...e, seq: this.journal.length + 1 } as AnyJournalEvent;
    this.journal.push(full);
    this.s = reduce(this.s, full);
  }
  start(agent: AgentSpec = AGENT, input: JsonValue = { name: 'Ada', n: 3 }) {
    this.append(createdEvent(this.s, OPTS.now, { tenantId: 'acme', runId: this.s.runId, agent, input }));
    this.append(toolsResolvedEvent(this.s, OPTS.now, TOOLS));
  }
  /** Applies a decision's events; returns its dispatches. */
  step() {
    const d = decide(this.s, OPTS);
    d.events.forEach((e) => this.append(e));
    return d.effects;
  }
  complete(result: JsonValue) {
    const f = this.s.inFlight!;
    this.append(toolOutcomeEvent(this.s, OPTS.now, { tenantId: 'acme', runId: this.s.runId, step: f.step, callKey: f.callKey, durationMs: 1, ok: true, result }));
  }
}

describe('the run engine', () => {
  it('asks for its tools to be resolved before anything runs', () => {
    const r = new Run();
    r.append(createdEvent(r.s, OPTS.now, { tenantId: 'acme', runId: r.s.runId, agent: AGENT, input: {} }));
    expect(decide(r.s, OPTS).effects).toEqual([{ kind: 'resolve_tools', refs: ['echo', 'upper@2'] }]);
    expect(r.s.status).toBe('queued');
  });

  it('runs a graph in order, feeding results into later steps, and completes with the last result', () => {
    const r = new Run();
    r.start();
    const first = r.step();
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ kind: 'dispatch_tool', command: { step: 1, callKey: `${r.s.runId}:1:0`, tool: TOOLS.echo, args: { text: 'Hello, Ada!' } } });
    expect(r.s.inFlight?.phase).toBe('called');
    r.complete({ text: 'Hello, Ada!' });
    const second = r.step();
    expect(second[0]).toMatchObject({ command: { step: 2, args: { text: 'Hello, Ada!', n: 3 } } });
    r.complete({ text: 'HELLO, ADA!' });
    expect(r.step()).toEqual([]);
    expect(r.s.status).toBe('completed');
    expect(r.s.output).toEqual({ text: 'HELLO, ADA!' });
    expect(r.journal.map((e) => e.type)).toEqual([
      'run.created', 'run.started', 'step.started', 'tool.called', 'tool.completed',
      'step.started', 'tool.called', 'tool.completed', 'run.completed',
    ]);
  });

  it('gives the same decision for the same state (deterministic) and a stable call key', () => {
    const r = new Run();
    r.start();
    expect(decide(r.s, OPTS)).toEqual(decide(r.s, OPTS));
  });

  it('re-dispatches the step in flight only when recovering', () => {
    const r = new Run();
    r.start();
    r.step();
    expect(decide(r.s, OPTS)).toEqual({ events: [], effects: [] });
    const again = decide(r.s, { ...OPTS, redispatch: true });
    expect(again.events).toEqual([]);
    expect(again.effects[0]).toMatchObject({ kind: 'dispatch_tool', command: { callKey: `${r.s.runId}:1:0` } });
  });

  it('finishes a half-written step after a crash between step.started and tool.called', () => {
    const r = new Run();
    r.start();
    const d = decide(r.s, OPTS);
    r.append(d.events[0]); // crash before tool.called
    const after = decide(r.s, OPTS);
    expect(after.events.map((e) => e.type)).toEqual(['tool.called']);
    expect(after.effects).toEqual(d.effects);
  });

  it('ignores a duplicate tool result', () => {
    const r = new Run();
    r.start();
    r.step();
    const f = r.s.inFlight!;
    const res = { tenantId: 'acme', runId: r.s.runId, step: 1, callKey: f.callKey, durationMs: 1, ok: true as const, result: { text: 'x' } };
    r.append(toolOutcomeEvent(r.s, OPTS.now, res));
    expect(toolOutcomeEvent(r.s, OPTS.now, res)).toBeNull();
  });

  it('fails the run with tool_error when a graph step fails', () => {
    const r = new Run();
    r.start();
    r.step();
    const f = r.s.inFlight!;
    r.append(toolOutcomeEvent(r.s, OPTS.now, { tenantId: 'acme', runId: r.s.runId, step: 1, callKey: f.callKey, durationMs: 1, ok: false, error: { code: 'internal', message: 'HTTP 400' } }));
    r.step();
    expect(r.s.status).toBe('failed');
    expect(r.s.error).toEqual({ code: 'tool_error', message: 'step greet (echo) failed: HTTP 400' });
  });

  it('enforces the smaller of the agent and global step caps', () => {
    const r = new Run();
    r.start({ ...AGENT, limits: { maxSteps: 1 } });
    r.step();
    r.complete({ text: 'hi' });
    r.step();
    expect(r.s.status).toBe('failed');
    expect(r.s.error?.code).toBe('step_limit');
  });

  it('fails with invalid_input when a template refers to a missing value', () => {
    const r = new Run();
    r.start(AGENT, { n: 1 });
    r.step();
    expect(r.s.error).toEqual({ code: 'invalid_input', message: '{{input.name}}: "name" is not there' });
  });

  it('cancels after the step in flight, not during it', () => {
    const r = new Run();
    r.start();
    r.step();
    r.append(cancelEvent(r.s, OPTS.now, 'operator'));
    expect(r.s.status).toBe('running');
    r.complete({ text: 'done anyway' });
    r.step();
    expect(r.s.status).toBe('cancelled');
    expect(r.journal.slice(-3).map((e) => e.type)).toEqual(['run.cancel_requested', 'tool.completed', 'run.cancelled']);
  });

  it('refuses events after a terminal one', () => {
    const r = new Run();
    r.start();
    r.append(cancelEvent(r.s, OPTS.now));
    expect(() => r.append({ ...r.journal[0], seq: 99 } as AnyJournalEvent)).toThrow(JournalDivergenceError);
  });

  it('replays a recorded journal without divergence, and reports the first divergence when the code would decide otherwise', () => {
    const r = new Run();
    r.start();
    r.step(); r.complete({ text: 'a' }); r.step(); r.complete({ text: 'b' }); r.step();
    const ok = replayJournal(r.journal, { globalMaxSteps: 200 });
    expect(ok.ok).toBe(true);
    expect(ok.state.status).toBe('completed');
    const tampered = r.journal.map((e) => (e.type === 'step.started' && e.step === 2 ? { ...e, data: { ...e.data, tool: 'echo' } } : e)) as AnyJournalEvent[];
    const bad = replayJournal(tampered, { globalMaxSteps: 200 });
    expect(bad.ok).toBe(false);
    expect(bad.divergence?.recorded.type).toBe('step.started');
    expect(bad.divergence?.seq).toBe(6);
  });
});

import { describe, expect, it } from '@jest/globals';
import { answer, PLANNER_PROTOCOL, type JsonValue, type PlannerReply, type PlannerRequest, type PlannerToolView } from '#libs/sdk';
import { createConfigAssistant, HISTORY_KEY, MEMORY_KEY, planTurn, type TurnOutput } from './assistant.js';

const READ: PlannerToolView = { name: 'config_get', version: '1', riskTier: 'read' };
const WRITE: PlannerToolView = { name: 'config_set', version: '1', riskTier: 'write' };

type ToolFn = (tool: string, args: JsonValue) => { ok: true; result: JsonValue } | { ok: false; error: { code: string; message: string } };

/**
 * A session as the platform runs it, without the platform: each turn is a run that asks the
 * planner until it finishes, carrying out its tool calls with `tools`; the run's memory writes
 * are visible to its later decisions and become the session's when it completes.
 */
class Session {
  memory: Record<string, JsonValue> = {};
  readonly calls: Array<{ tool: string; args: JsonValue }> = [];
  readonly emitted: string[] = [];
  private n = 0;
  private readonly store = new Map<string, JsonValue>();

  constructor(private readonly toolViews: PlannerToolView[] = [READ, WRITE], private readonly planner = createConfigAssistant(), public tools?: ToolFn) {}

  private run(tool: string, args: JsonValue): ReturnType<ToolFn> {
    this.calls.push({ tool, args });
    if (this.tools) return this.tools(tool, args);
    const a = args as { key: string; value?: JsonValue };
    if (tool === WRITE.name) { this.store.set(a.key, a.value ?? null); return { ok: true, result: { key: a.key, stored: true } }; }
    return { ok: true, result: { key: a.key, found: this.store.has(a.key), value: this.store.get(a.key) ?? null } };
  }

  /** One turn: returns the run's output (or its failure). */
  async turn(input: JsonValue): Promise<{ status: 'completed'; output: TurnOutput } | { status: 'failed'; message: string }> {
    const runId = `run_${++this.n}`;
    const memory = { ...this.memory };
    const steps: PlannerRequest['steps'] = [];
    for (let d = 1; d < 20; d++) {
      const req: PlannerRequest = {
        protocol: PLANNER_PROTOCOL, planner: this.planner.name, decisionKey: `${runId}:d${d}`, tenantId: 'acme', runId, sessionId: 'sess',
        agent: { name: 'cfg', version: '1', limits: {} }, tools: this.toolViews, input,
        session: { turns: [], memory: { ...memory } }, steps: [...steps], emitted: [], step: steps.length, maxSteps: 10,
      };
      const reply: PlannerReply = await answer(this.planner, req);
      if (!reply.ok) return { status: 'failed', message: reply.error.message };
      for (const [k, v] of Object.entries(reply.memory ?? {})) { if (v === null) delete memory[k]; else memory[k] = v; }
      this.emitted.push(...(reply.emit ?? []));
      const dec = reply.decision;
      if (dec.kind === 'finish') { this.memory = memory; return { status: 'completed', output: dec.output as unknown as TurnOutput }; }
      if (dec.kind !== 'call_tool') throw new Error(`unexpected decision ${dec.kind}`);
      const out = this.run(dec.tool, dec.args);
      steps.push({ kind: 'tool', step: steps.length + 1, tool: dec.tool, args: dec.args, ...(dec.id ? { id: dec.id } : {}), ...out });
    }
    throw new Error('the run did not finish');
  }

  async output(input: JsonValue): Promise<TurnOutput> {
    const r = await this.turn(input);
    if (r.status !== 'completed') throw new Error(`turn failed: ${r.message}`);
    return r.output;
  }

  writes(): Array<{ tool: string; args: JsonValue }> {
    return this.calls.filter((c) => c.tool === WRITE.name);
  }
}

describe('config-assistant: confirm before write', () => {
  it('proposes a change with the current value, writes nothing, and keeps the proposal in session memory', async () => {
    const s = new Session();
    const out = await s.output('set timeout to 30');
    expect(out).toEqual({
      state: 'awaiting_confirmation', change: { key: 'timeout', value: 30, previous: null },
      message: 'I will set timeout to 30 (now null). Reply "yes" to apply it or "no" to discard it.',
    });
    expect(s.calls).toEqual([{ tool: 'config_get', args: { key: 'timeout' } }]);
    expect(s.memory[MEMORY_KEY]).toMatchObject({ phase: 'awaiting_confirmation', change: { key: 'timeout', value: 30 }, proposedIn: 'run_1' });
  });

  it('applies the pending change with the write tool only when a later turn confirms it, streaming progress', async () => {
    const s = new Session();
    await s.output('set timeout to 30');
    const out = await s.output('yes');
    expect(out).toMatchObject({ state: 'done', message: 'Applied: timeout is now 30.', change: { key: 'timeout', value: 30 }, result: { key: 'timeout', stored: true } });
    expect(s.writes()).toEqual([{ tool: 'config_set', args: { key: 'timeout', value: 30 } }]);
    expect(s.emitted).toEqual(['Applying timeout = 30…']);
    expect(s.memory[MEMORY_KEY]).toBeUndefined();
    expect(s.memory[HISTORY_KEY]).toEqual([{ key: 'timeout', value: 30, runId: 'run_2' }]);
    // the next proposal for the key shows the value written
    expect(await s.output('set timeout to 45')).toMatchObject({ change: { key: 'timeout', value: 45, previous: 30 } });
  });

  it('discards the pending change on "no" and writes nothing', async () => {
    const s = new Session();
    await s.output('set timeout to 30');
    expect(await s.output('no')).toEqual({ state: 'idle', message: 'Discarded the change of timeout to 30. Nothing was changed.' });
    expect(await s.output('yes')).toMatchObject({ state: 'idle', message: expect.stringContaining('There is no change waiting') });
    expect(s.writes()).toEqual([]);
    expect(s.memory[MEMORY_KEY]).toBeUndefined();
  });

  it('keeps the proposal across unrelated turns and reminds the user of it', async () => {
    const s = new Session();
    await s.output('set log.level to debug');
    expect(await s.output('hmm, what does that do?')).toMatchObject({ state: 'awaiting_confirmation', message: expect.stringMatching(/^A change is waiting/), change: { key: 'log.level', value: 'debug' } });
    expect(await s.output('apply')).toMatchObject({ state: 'done' });
    expect(s.writes()).toEqual([{ tool: 'config_set', args: { key: 'log.level', value: 'debug' } }]);
  });

  it('replaces the pending proposal when the user asks for another change', async () => {
    const s = new Session();
    await s.output('set timeout to 30');
    expect(await s.output('set timeout to 60')).toMatchObject({ state: 'awaiting_confirmation', change: { value: 60 } });
    await s.output('yes');
    expect(s.writes()).toEqual([{ tool: 'config_set', args: { key: 'timeout', value: 60 } }]);
  });

  it('collects a missing value over turns before proposing', async () => {
    const s = new Session();
    expect(await s.output('set retries')).toEqual({ state: 'collecting', message: 'What value should retries get?' });
    expect(s.memory[MEMORY_KEY]).toMatchObject({ phase: 'collecting', key: 'retries' });
    expect(await s.output('yes')).toEqual({ state: 'collecting', message: 'What value should retries get?' });
    expect(await s.output('5')).toMatchObject({ state: 'awaiting_confirmation', change: { key: 'retries', value: 5 } });
    expect(await s.output({ confirm: true })).toMatchObject({ state: 'done' });
    expect(s.writes()).toEqual([{ tool: 'config_set', args: { key: 'retries', value: 5 } }]);
  });

  it('keeps the change pending when the write tool fails, so the user can try again', async () => {
    let fail = true;
    const s = new Session([READ, WRITE], createConfigAssistant(), (tool): ReturnType<ToolFn> => {
      if (tool === WRITE.name && fail) { fail = false; return { ok: false, error: { code: 'tool_error', message: 'config store is read-only' } }; }
      return { ok: true, result: tool === WRITE.name ? { stored: true } : { found: false, value: null } };
    });
    await s.output('set timeout to 30');
    expect(await s.output('yes')).toMatchObject({ state: 'awaiting_confirmation', message: expect.stringContaining('config store is read-only') });
    expect(s.memory[MEMORY_KEY]).toMatchObject({ phase: 'awaiting_confirmation' });
    expect(await s.output('yes')).toMatchObject({ state: 'done' });
    expect(s.writes()).toHaveLength(2);
  });

  it('proposes without reading when the agent has no read tool', async () => {
    const s = new Session([WRITE]);
    expect(await s.output('set a = 1')).toEqual({ state: 'awaiting_confirmation', change: { key: 'a', value: 1 }, message: 'I will set a to 1. Reply "yes" to apply it or "no" to discard it.' });
    expect(s.calls).toEqual([]);
  });

  it('fails the run (planner_error) with a clear message when the agent has no write tool', async () => {
    const s = new Session([READ]);
    expect(await s.turn('set a = 1')).toEqual({ status: 'failed', message: 'config-assistant: agent "cfg" has no tool with risk tier "write" to apply changes with' });
  });

  it('uses the tools it is told to use, under the name it is given', async () => {
    const other: PlannerToolView = { name: 'settings_put', version: '2', riskTier: 'write' };
    const s = new Session([WRITE, other], createConfigAssistant({ name: 'cfg-bot', writeTool: 'settings_put' }));
    await s.output('set a = 1');
    await s.output('yes');
    expect(s.calls.map((c) => c.tool)).toEqual(['settings_put']);
  });

  it('answers anything else with what it can do', () => {
    expect(planTurn({ kind: 'other', text: 'hello' }, undefined)).toEqual({ kind: 'help', text: 'hello' });
  });
});

import { describe, expect, it } from '@jest/globals';
import { PLANNER_LIMITS, type AgentSpec, type PlannerDecidedData, type PlannerDecision, type JsonValue } from '#libs/contracts';
import { decide, plannerDecidedEvent, type Effect } from './decide.js';
import { replayJournal } from './replay.js';
import { NOW, OPTS, reply, TestRun } from './test/run.js';

const TOOLS = {
  config_get: { name: 'config_get', version: '1', riskTier: 'read' as const },
  config_set: { name: 'config_set', version: '1', riskTier: 'write' as const },
};
const AGENT: AgentSpec = { name: 'cfg', version: '3', planner: 'config-assistant', instructions: 'Be careful.', tools: ['config_get', 'config_set'], limits: { maxSteps: 12 } };

function ask(effects: Effect[]): Extract<Effect, { kind: 'ask_planner' }> {
  const e = effects[0];
  if (effects.length !== 1 || e.kind !== 'ask_planner') throw new Error(`expected ask_planner, got ${JSON.stringify(effects)}`);
  return e;
}

function decided(r: TestRun, decision: PlannerDecision, extra: Partial<PlannerDecidedData> = {}): void {
  const n = (r.s.planner?.decisions ?? 0) + 1;
  r.append(plannerDecidedEvent(r.s, NOW, { decisionKey: `${r.s.runId}:d${n}`, planner: 'config-assistant', protocol: 'planner.v1', decision, ...extra }));
}

function started(memory: Record<string, JsonValue> = {}) {
  const r = new TestRun();
  r.start(AGENT, TOOLS, 'set max_connections to 200', { sessionId: 'sess-1', session: { turns: [{ runId: 'run_0', input: 'hi', output: 'hello', at: NOW }], memory } });
  return r;
}

describe('external planners (planner.v1)', () => {
  it('asks the planner with a view of the run: agent, tools, input, session, steps', () => {
    const r = started({ theme: 'dark' });
    const { request } = ask(r.decide());
    expect(r.journal).toHaveLength(2); // asking records nothing: the answer is what gets recorded
    expect(request).toEqual({
      protocol: 'planner.v1', planner: 'config-assistant', decisionKey: `${r.s.runId}:d1`, tenantId: 'acme', runId: r.s.runId, sessionId: 'sess-1',
      agent: { name: 'cfg', version: '3', instructions: 'Be careful.', limits: { maxSteps: 12 } },
      tools: [{ name: 'config_get', version: '1', riskTier: 'read' }, { name: 'config_set', version: '1', riskTier: 'write' }],
      input: 'set max_connections to 200',
      session: { turns: [{ runId: 'run_0', input: 'hi', output: 'hello', at: NOW }], memory: { theme: 'dark' } },
      steps: [], emitted: [], step: 0, maxSteps: 12,
    });
  });

  it('carries out a recorded tool call through the usual path and shows the outcome in the next view', () => {
    const r = started();
    r.decide();
    decided(r, { kind: 'call_tool', tool: 'config_get', args: { key: 'max_connections' }, id: 'read' });
    const [dispatch] = r.decide();
    expect(dispatch).toMatchObject({ kind: 'dispatch_tool', command: { step: 1, tool: TOOLS.config_get, args: { key: 'max_connections' } } });
    expect(r.journal.at(-2)?.data).toEqual({ kind: 'tool', stepId: 'read', tool: 'config_get', args: { key: 'max_connections' } });
    expect(r.s.planner?.pending).toBeNull();
    r.tool({ value: 100 });
    const { request } = ask(r.decide());
    expect(request.decisionKey).toBe(`${r.s.runId}:d2`);
    expect(request.steps).toEqual([{ kind: 'tool', step: 1, tool: 'config_get', args: { key: 'max_connections' }, id: 'read', ok: true, result: { value: 100 } }]);
    expect(request.step).toBe(1);
  });

  it('records memory writes and partial outputs with the decision and shows them in later views', () => {
    const r = started({ stale: 1, keep: true });
    r.decide();
    decided(r, { kind: 'emit', output: 'Reading the current value…' }, { memory: { pending: { key: 'max_connections', to: 200 }, stale: null }, emit: ['thinking'] });
    const { request } = ask(r.decide()); // an emit is done once recorded: the planner is asked again
    expect(request.session.memory).toEqual({ keep: true, pending: { key: 'max_connections', to: 200 } });
    expect(request.emitted).toEqual(['thinking', 'Reading the current value…']);
    expect(request.decisionKey).toBe(`${r.s.runId}:d2`);
  });

  it('finishes and fails the run as the planner decides', () => {
    const ok = started();
    ok.decide();
    decided(ok, { kind: 'finish', output: { text: 'Change max_connections from 100 to 200?' } });
    ok.decide();
    expect(ok.s).toMatchObject({ status: 'completed', output: { text: 'Change max_connections from 100 to 200?' } });

    const bad = started();
    bad.decide();
    decided(bad, { kind: 'fail', message: 'the planner crashed: boom' });
    bad.decide();
    expect(bad.s).toMatchObject({ status: 'failed', error: { code: 'planner_error', message: 'the planner crashed: boom' } });
  });

  it('calls the LLM with the planner\'s messages, and a worker taking over makes the same call', () => {
    const r = started();
    r.decide();
    decided(r, { kind: 'call_llm', messages: [{ role: 'user', content: 'Explain max_connections.' }], hint: 'easy', maxTokens: 64 });
    const effects = r.decide();
    const call = { kind: 'call_llm', step: 1, callKey: `${r.s.runId}:1:0`, request: { messages: [{ role: 'user', content: 'Explain max_connections.' }], tools: [], hint: 'easy', maxTokens: 64 } };
    expect(effects).toEqual([call]);
    expect(r.journal.at(-2)?.data).toEqual({ kind: 'llm', model: 'auto', hint: 'easy' });
    expect(decide(r.s, { ...OPTS, redispatch: true }).effects).toEqual([call]);
    r.llm(reply('It caps concurrent connections.'));
    const { request } = ask(r.decide());
    expect(request.steps).toEqual([{ kind: 'llm', step: 1, model: 'sim-70b', message: { role: 'assistant', content: 'It caps concurrent connections.' }, usage: { inputTokens: 120, outputTokens: 30 } }]);
  });

  it('refuses an LLM call offering tools the agent does not have', () => {
    const r = started();
    r.decide();
    decided(r, { kind: 'call_llm', messages: [{ role: 'user', content: 'x' }], tools: ['shell'] });
    r.decide();
    expect(r.s.error).toEqual({ code: 'planner_error', message: 'the LLM call offers tools that are not the agent\'s: shell' });
  });

  it('asks a human first when the planner wants an approval, whatever the tool\'s tier', () => {
    const r = started();
    r.decide();
    decided(r, { kind: 'call_tool', tool: 'config_get', args: { key: 'a' }, requireApproval: true });
    const [timer] = r.decide();
    expect(timer.kind).toBe('schedule_approval_timeout');
    expect(r.s.status).toBe('waiting_approval');
    expect(r.s.planner?.pending).toMatchObject({ kind: 'call_tool' }); // still to be acted on once approved
  });

  it('stops a planner that keeps answering without starting a step', () => {
    const r = started();
    for (let i = 0; i < PLANNER_LIMITS.maxDecisionsWithoutStep; i++) {
      r.decide();
      decided(r, { kind: 'emit', output: i });
    }
    r.decide();
    expect(r.s.error?.code).toBe('loop_detected');
  });

  it('replays a journal with recorded planner decisions without asking the planner', () => {
    const r = started();
    r.decide();
    decided(r, { kind: 'call_tool', tool: 'config_get', args: { key: 'k' } }, { memory: { seen: true } });
    r.decide();
    r.tool({ value: 1 });
    r.decide();
    decided(r, { kind: 'finish', output: 'k is 1' });
    r.decide();
    expect(r.s.status).toBe('completed');
    const report = replayJournal(r.journal, { globalMaxSteps: 200 });
    expect(report).toMatchObject({ ok: true });
    expect(report.decisionsChecked).toBe(3); // step.started, tool.called, run.completed
    const tampered = r.journal.map((e) => (e.type === 'planner.decided' && e.data.decision.kind === 'finish' ? { ...e, data: { ...e.data, decision: { kind: 'finish', output: 'k is 2' } } } as typeof e : e));
    expect(replayJournal(tampered, { globalMaxSteps: 200 })).toMatchObject({ ok: false, divergence: { recorded: { type: 'run.completed' } } });
  });
});

import { describe, expect, it } from '@jest/globals';
import type { AgentSpec } from '#libs/contracts';
import { approvalDecisionEvent, cancelEvent, decide, failEvent, type Effect } from './decide.js';
import { replayJournal } from './replay.js';
import { NOW, OPTS, reply, TestRun } from './test/run.js';

const TOOLS = {
  lookup: { name: 'lookup', version: '1', riskTier: 'read' as const },
  wire: { name: 'wire', version: '2', riskTier: 'irreversible' as const },
};
const AGENT: AgentSpec = {
  name: 'helper', version: '1', planner: 'react', instructions: 'You help with orders.', tools: ['lookup', 'wire@2'], limits: { maxSteps: 10 },
};

function llmEffect(effects: Effect[]): Extract<Effect, { kind: 'call_llm' }> {
  const e = effects.find((x) => x.kind === 'call_llm');
  if (!e || e.kind !== 'call_llm') throw new Error(`no call_llm in ${JSON.stringify(effects)}`);
  return e;
}

function started(agent = AGENT, input = 'Where is order 42?') {
  const r = new TestRun();
  r.start(agent, TOOLS, input);
  return r;
}

describe('the react planner', () => {
  it('starts with an LLM step: instructions and input as messages, the pinned tools offered, a hard hint', () => {
    const r = started();
    const call = llmEffect(r.decide());
    expect(r.journal.slice(-2).map((e) => [e.type, e.step, e.data])).toEqual([
      ['step.started', 1, { kind: 'llm', model: 'auto', hint: 'hard' }],
      ['llm.called', 1, { callKey: `${r.s.runId}:1:0`, model: 'auto' }],
    ]);
    expect(call).toEqual({
      kind: 'call_llm', step: 1, callKey: `${r.s.runId}:1:0`,
      request: {
        messages: [{ role: 'system', content: 'You help with orders.' }, { role: 'user', content: 'Where is order 42?' }],
        tools: ['lookup', 'wire'], hint: 'hard',
      },
    });
    expect(r.s.status).toBe('running');
    expect(r.s.llmCall).toMatchObject({ step: 1, phase: 'called' });
  });

  it('makes the tool call the model asked for as a tool step, then calls the model again with the result', () => {
    const r = started();
    r.decide();
    r.llm(reply(null, [['lookup', { order: 42 }]]));
    expect(r.s.llmCall).toBeNull();
    expect(r.s.cost).toMatchObject({ inputTokens: 120, outputTokens: 30 });
    const [dispatch] = r.decide();
    expect(dispatch).toMatchObject({ kind: 'dispatch_tool', command: { step: 2, callKey: `${r.s.runId}:2:0`, tool: TOOLS.lookup, args: { order: 42 } } });
    expect(r.journal.find((e) => e.type === 'step.started' && e.step === 2)?.data).toEqual({ kind: 'tool', tool: 'lookup', args: { order: 42 }, toolCallId: 'call_0' });
    r.tool({ status: 'shipped' });
    const call = llmEffect(r.decide());
    expect(call.step).toBe(3);
    expect(call.request.hint).toBe('easy');
    expect(call.request.messages.slice(2)).toEqual([
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'lookup', arguments: '{"order":42}' } }] },
      { role: 'tool', tool_call_id: 'call_0', content: '{"status":"shipped"}' },
    ]);
    r.llm(reply('Order 42 has shipped.'));
    expect(r.decide()).toEqual([]);
    expect(r.s.status).toBe('completed');
    expect(r.s.output).toBe('Order 42 has shipped.');
    expect(r.journal.map((e) => e.type)).toEqual([
      'run.created', 'run.started',
      'step.started', 'llm.called', 'llm.completed',
      'step.started', 'tool.called', 'tool.completed',
      'step.started', 'llm.called', 'llm.completed',
      'run.completed',
    ]);
  });

  it('makes several tool calls of one reply one step at a time, in order', () => {
    const r = started();
    r.decide();
    r.llm(reply('Checking both.', [['lookup', { order: 1 }], ['lookup', { order: 2 }]]));
    expect(r.decide()[0]).toMatchObject({ command: { step: 2, args: { order: 1 } } });
    r.tool({ status: 'open' });
    expect(r.decide()[0]).toMatchObject({ command: { step: 3, args: { order: 2 } } });
    r.tool({ status: 'closed' });
    const call = llmEffect(r.decide());
    expect(call.request.messages.filter((m) => m.role === 'tool').map((m) => m.tool_call_id)).toEqual(['call_0', 'call_1']);
  });

  it('gives a failed tool call back to the model as its result, with a hard hint', () => {
    const r = started();
    r.decide();
    r.llm(reply(null, [['lookup', { order: 7 }]]));
    r.decide();
    r.tool('upstream broke', false);
    const call = llmEffect(r.decide());
    expect(call.request.hint).toBe('hard');
    expect(call.request.messages.at(-1)).toEqual({ role: 'tool', tool_call_id: 'call_0', content: '{"error":{"code":"http_500","message":"upstream broke"}}' });
    expect(r.s.status).toBe('running');
  });

  it('passes arguments that are not JSON to the tool as the raw string (the tool-runner refuses them)', () => {
    const r = started();
    r.decide();
    r.llm(reply(null, [['lookup', '{order: 42']]));
    expect(r.decide()[0]).toMatchObject({ command: { args: '{order: 42' } });
  });

  it('puts the session\'s earlier turns between the instructions and the input', () => {
    const r = new TestRun();
    r.start(AGENT, TOOLS, { question: 'and now?' }, {
      sessionId: 's1',
      session: { turns: [{ runId: 'run_1', input: 'hi', output: 'hello!', at: NOW }], memory: {} },
    });
    expect(llmEffect(r.decide()).request.messages).toEqual([
      { role: 'system', content: 'You help with orders.' },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello!' },
      { role: 'user', content: '{"question":"and now?"}' },
    ]);
  });

  it('names the agent\'s model outright when it has one', () => {
    const r = started({ ...AGENT, model: 'gpt-4o' });
    const call = llmEffect(r.decide());
    expect(call.request.model).toBe('gpt-4o');
    expect(r.journal.at(-2)?.data).toEqual({ kind: 'llm', model: 'gpt-4o', hint: 'hard' });
  });

  it('never calls the model again for a recorded reply; a worker taking over re-sends only a call with no reply', () => {
    const r = started();
    const first = llmEffect(r.decide());
    // in flight: a worker that took over makes the same call again; one that did not waits
    expect(decide(r.s, OPTS)).toEqual({ events: [], effects: [] });
    expect(decide(r.s, { ...OPTS, redispatch: true })).toEqual({ events: [], effects: [first] });
    r.llm(reply(null, [['lookup', { order: 42 }]]));
    for (const redispatch of [false, true]) {
      expect(decide(r.s, { ...OPTS, redispatch }).effects.some((e) => e.kind === 'call_llm')).toBe(false);
    }
  });

  it('records the worst case held for the call and leaves the actual cost to settle', () => {
    const r = started();
    r.decide();
    r.reserve(0.07);
    expect(r.s.llmCall?.reservedUsd).toBe(0.07);
    r.llm(reply('done'));
    expect(r.s.unsettled).toEqual({ callKey: `${r.s.runId}:1:0`, usd: 0.0012 });
  });

  it('counts LLM calls as steps against the step cap', () => {
    const r = started({ ...AGENT, limits: { maxSteps: 2 } });
    r.decide();
    r.llm(reply(null, [['lookup', { order: 1 }]]));
    r.decide();
    r.tool({ ok: 1 });
    expect(r.decide()).toEqual([]);
    expect(r.s.error).toEqual({ code: 'step_limit', message: 'the run reached its step limit of 2' });
  });

  it('stops a model that asks for the same call again and again (loop detection)', () => {
    const r = started({ ...AGENT, limits: { maxSteps: 50 } });
    for (let i = 0; i < 3; i++) {
      r.decide();
      r.llm(reply(null, [['lookup', { order: 1 }]]));
      r.decide();
      r.tool({ status: 'open' });
    }
    r.decide();
    r.llm(reply(null, [['lookup', { order: 1 }]]));
    r.decide();
    expect(r.s.status).toBe('failed');
    expect(r.s.error?.code).toBe('loop_detected');
  });

  it('fails the run when the model names a tool the agent does not have', () => {
    const r = started();
    r.decide();
    r.llm(reply(null, [['rm_rf', {}]]));
    r.decide();
    expect(r.s.error).toEqual({ code: 'invalid_input', message: 'tool "rm_rf" is not one of the agent\'s tools' });
  });

  it('asks a human before an irreversible call the model wants, and makes it once approved', () => {
    const r = started();
    r.decide();
    r.llm(reply(null, [['wire', { amount: 5 }]]));
    const [timer] = r.decide();
    expect(timer.kind).toBe('schedule_approval_timeout');
    expect(r.s.status).toBe('waiting_approval');
    expect(r.s.approval).toMatchObject({ tool: 'wire', version: '2', args: { amount: 5 }, step: 2 });
    r.append(approvalDecisionEvent(r.s, NOW, { tenantId: 'acme', runId: r.s.runId, approvalId: r.s.approval!.approvalId, decision: 'approve', by: 'key_1' }));
    const [dispatch] = r.decide();
    expect(dispatch).toMatchObject({ kind: 'dispatch_tool', command: { step: 2, tool: TOOLS.wire, args: { amount: 5 }, approval: { approvalId: r.s.approval!.approvalId } } });
  });

  it('ends a run cancelled during an LLM call once the reply is recorded', () => {
    const r = started();
    r.decide();
    r.append(cancelEvent(r.s, NOW, 'stop'));
    expect(r.journal.at(-1)?.type).toBe('run.cancel_requested');
    r.llm(reply(null, [['lookup', { order: 1 }]]));
    r.decide();
    expect(r.s.status).toBe('cancelled');
  });

  it('replays a recorded react journal without divergence, and spots a changed decision', () => {
    const r = started();
    r.decide();
    r.reserve(0.05);
    r.llm(reply(null, [['lookup', { order: 42 }]]), 0.05);
    r.decide();
    r.tool({ status: 'shipped' });
    r.decide();
    r.llm(reply('Shipped.'));
    r.decide();
    expect(r.s.status).toBe('completed');
    const report = replayJournal(r.journal, { globalMaxSteps: 200 });
    expect(report).toMatchObject({ ok: true, eventsChecked: r.journal.length });
    // decided: 2 × (step.started, llm.called), step.started + tool.called, run.completed
    expect(report.decisionsChecked).toBe(7);
    const tampered = r.journal.map((e) => (e.type === 'step.started' && e.step === 2 ? { ...e, data: { ...e.data, args: { order: 43 } } } as typeof e : e));
    expect(replayJournal(tampered, { globalMaxSteps: 200 })).toMatchObject({ ok: false, divergence: { seq: tampered.find((e) => e.type === 'step.started' && e.step === 2)!.seq } });
  });

  it('takes a failure recorded while the LLM call was in flight as an outcome (replay)', () => {
    const r = started();
    r.decide();
    r.append(failEvent(r.s, NOW, { code: 'planner_error', message: 'the model refused the request' }));
    expect(r.s.status).toBe('failed');
    expect(r.s.llmCall).toBeNull();
    expect(replayJournal(r.journal, { globalMaxSteps: 200 }).ok).toBe(true);
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { messageText, startReplicaSimulator, type ReplicaSimulator, type ScriptRule } from '../apps/inference-router/src/simulator/index.js';
import { followEvents, newTenant, startTestMesh, waitForRun, type Api, type Mesh, type SseEvent } from './support/harness.js';
import { startEffectServer, type EffectServer } from './support/effect-server.js';

/**
 * A `react` agent through the real mesh: orchestrator → inference-router → two replica simulators
 * (started here, so the test sees every request they get) with a scripted tool-calling reply →
 * the tool through the tool-runner → the final answer.
 */

const TOOL_CALL_TEXT = 'I will shout it with the tool first.';
const FINAL_TEXT = 'The shout tool answered, so the final answer is: HELLO MESH, loud and clear, from the simulated model.';

/** Prices for the two simulated models (the cheap one is much cheaper). */
const PRICES = { models: { 'sim-70b': { inputPer1M: 3, outputPer1M: 15 }, 'sim-8b': { inputPer1M: 0.2, outputPer1M: 0.6 } } };
/** The planner's hint decides: `hard` → the frontier model, `easy` → the cheap one. */
const MODEL_ROUTING = {
  cheapModel: 'sim-8b',
  frontierModel: 'sim-70b',
  rules: [
    { name: 'planner-hard', when: { hint: 'hard' }, use: 'frontier' },
    { name: 'planner-easy', when: { hint: 'easy' }, use: 'cheap' },
  ],
  fallback: 'frontier',
};

/** Sums the samples of a metric whose labels include all of `labels` (Prometheus text format). */
function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const have = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[2]);
  }
  return sum;
}

describe('a react agent through the mesh: router, simulated replicas, tool-runner', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let sims: ReplicaSimulator[] = [];
  let fx: EffectServer;
  let api: Api;
  let key: string;
  let t: string;
  let routerUrl: string;
  /** Every chat request the simulators got: the role and text of its last user/tool message. */
  const modelCalls: Array<{ replica: string; role: string; text: string }> = [];

  const script = (replica: string): ScriptRule[] => [
    { match: (m) => { modelCalls.push({ replica, role: m.role, text: messageText(m) }); return false; }, reply: {} },
    { match: { role: 'user', contains: 'Shout' }, reply: { content: TOOL_CALL_TEXT, tool_calls: [{ name: 'shout', arguments: { text: 'hello mesh' } }] } },
    { match: { role: 'tool' }, reply: { content: FINAL_TEXT } },
  ];
  const metrics = async () => (await fetch(`${routerUrl}/metrics`)).text();
  const journal = async (runId: string): Promise<SseEvent[]> => {
    const events: SseEvent[] = [];
    await followEvents(mesh.gatewayUrl, key, `/v1/tenants/${t}/runs/${runId}/events`, (e) => events.push(e));
    return events;
  };
  const startRun = async (input: string) => {
    const r = await api('POST', `/v1/tenants/${t}/runs`, { agent: 'shouter', input });
    expect(r.status).toBe(201);
    return r.body.id as string;
  };

  beforeAll(async () => {
    for (const id of ['gpu-a', 'gpu-b']) sims.push(await startReplicaSimulator({ replicaId: id, timeScale: 0.02, script: script(id) }));
    fx = await startEffectServer();
    mesh = await startTestMesh({
      AGENTMESH_REPLICAS: JSON.stringify(sims.map((s) => ({ id: s.replicaId, url: s.url, kind: 'openai', models: ['sim-70b', 'sim-8b'], capacity: 16 }))),
      AGENTMESH_MODEL_ROUTING: JSON.stringify(MODEL_ROUTING),
      AGENTMESH_PRICES: JSON.stringify(PRICES),
      AGENTMESH_ACK_WAIT: '2s',
    });
    routerUrl = `http://127.0.0.1:${mesh.ports['inference-router']}`;
    const tenant = await newTenant(mesh, 'react');
    api = tenant.owner; key = tenant.ownerKey; t = tenant.id;
    const tool = {
      version: '1', description: 'shouts the text (a local HTTP tool)', riskTier: 'write',
      inputSchema: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } },
      timeoutMs: 10_000, egress: [`127.0.0.1:${fx.port}`], transport: { kind: 'http', url: `${fx.url}/shout` },
    };
    expect((await api('PUT', `/v1/tenants/${t}/tools/shout`, tool)).status).toBe(201);
    const agent = { version: '1', planner: 'react', instructions: 'You are a helpful agent. Use the tools when they help.', tools: ['shout'], limits: { maxSteps: 10 } };
    expect((await api('PUT', `/v1/tenants/${t}/agents/shouter`, agent)).status).toBe(201);
  });
  afterAll(async () => {
    await mesh?.cleanup();
    await fx?.close();
    await Promise.all(sims.map((s) => s.close()));
  });

  it('runs the tool-calling loop: the model asks for a tool, the tool-runner makes the call, the model answers', async () => {
    const before = await metrics();
    const callsBefore = modelCalls.length;
    const runId = await startRun('Shout hello mesh, please.');
    // follow the live stream from the start: llm.delta events arrive while the model streams
    const live: SseEvent[] = [];
    const following = followEvents(mesh.gatewayUrl, key, `/v1/tenants/${t}/runs/${runId}/events`, (e) => live.push(e));
    const run = await waitForRun(api, t, runId, 30_000);
    await following;
    expect(run).toMatchObject({ status: 'completed', output: FINAL_TEXT });

    // the model was called twice: the prompt, then the tool's result
    const calls = modelCalls.slice(callsBefore);
    expect(calls.map((c) => c.role)).toEqual(['user', 'tool']);
    expect(calls[0].text).toContain('Shout hello mesh');
    expect(JSON.parse(calls[1].text)).toMatchObject({ done: { text: 'hello mesh' } });
    // the tool really ran once, through the tool-runner
    expect([...fx.effects.entries()].filter(([k]) => k.startsWith(runId))).toEqual([[`${runId}:2:0`, 1]]);

    const types = live.map((e) => e.event);
    expect(types.filter((x) => x === 'llm.called')).toHaveLength(2);
    expect(types.filter((x) => x === 'llm.completed')).toHaveLength(2);
    expect(types.filter((x) => x === 'tool.completed')).toHaveLength(1);
    expect(types.at(-1)).toBe('run.completed');
    const completed = live.filter((e) => e.event === 'llm.completed').map((e) => e.data.data);
    // model routing by the planner's hint: the first call (planning) is hard, reading a tool result is easy
    expect(completed.map((c) => c.model)).toEqual(['sim-70b', 'sim-8b']);
    expect(completed[0].message).toMatchObject({ role: 'assistant', content: TOOL_CALL_TEXT, tool_calls: [{ type: 'function', function: { name: 'shout', arguments: '{"text":"hello mesh"}' } }] });
    expect(completed[1].message).toMatchObject({ role: 'assistant', content: FINAL_TEXT });
    for (const c of completed) {
      expect(['gpu-a', 'gpu-b']).toContain(c.replica);
      expect(c.usage.inputTokens).toBeGreaterThan(0);
      expect(c.usage.outputTokens).toBeGreaterThan(0);
      expect(c.costUsd).toBeGreaterThan(0);
    }
    // the streamed text came as llm.delta events on SSE, in order, before each call's llm.completed
    for (const c of completed) {
      const deltas = live.filter((e) => e.event === 'llm.delta' && e.data.data.callKey === c.callKey);
      expect(deltas.length).toBeGreaterThan(0);
      expect(deltas.map((e) => e.data.data.text).join('')).toBe(c.message.content);
      const completedAt = live.findIndex((e) => e.event === 'llm.completed' && e.data.data.callKey === c.callKey);
      expect(live.indexOf(deltas.at(-1)!)).toBeLessThan(completedAt);
    }
    // each LLM call reserved its worst case and settled the actual cost once
    for (const c of completed) {
      expect(live.filter((e) => e.event === 'budget.reserved' && e.data.data.callKey === c.callKey)).toHaveLength(1);
      const settled = live.filter((e) => e.event === 'budget.settled' && e.data.data.callKey === c.callKey);
      expect(settled).toHaveLength(1);
      expect(settled[0].data.data.usd).toBeCloseTo(c.costUsd, 6);
    }

    // the cost-governor metered both calls by model
    const usage = await waitForUsage(api, t, ['sim-70b', 'sim-8b']);
    const byModel = Object.fromEntries(usage.groups.map((g: { key: string }) => [g.key, g]));
    expect(byModel['sim-70b']).toMatchObject({ inputTokens: completed[0].usage.inputTokens, outputTokens: completed[0].usage.outputTokens });
    expect(byModel['sim-8b']).toMatchObject({ inputTokens: completed[1].usage.inputTokens, outputTokens: completed[1].usage.outputTokens });
    expect(byModel['sim-70b'].usd).toBeCloseTo(completed[0].costUsd, 6);

    // the router's metrics moved: placements, tokens and cost by tenant and model, replica gauges
    const after = await metrics();
    const moved = (name: string, labels: Record<string, string> = {}) => metricSum(after, name, labels) - metricSum(before, name, labels);
    expect(moved('agentmesh_router_assignments_total')).toBe(2);
    expect(moved('agentmesh_router_assignments_total', { outcome: 'new' })).toBe(2); // one session, a new pin in each model's pool
    expect(moved('agentmesh_llm_tokens_total', { tenant: t, model: 'sim-70b', direction: 'input' })).toBe(completed[0].usage.inputTokens);
    expect(moved('agentmesh_llm_tokens_total', { tenant: t, model: 'sim-70b', direction: 'output' })).toBe(completed[0].usage.outputTokens);
    expect(moved('agentmesh_llm_tokens_total', { tenant: t, model: 'sim-8b', direction: 'input' })).toBe(completed[1].usage.inputTokens);
    expect(moved('agentmesh_llm_cost_usd_total', { tenant: t, model: 'sim-70b' })).toBeCloseTo(completed[0].costUsd, 6);
    expect(moved('agentmesh_llm_cost_usd_total', { tenant: t, model: 'sim-8b' })).toBeCloseTo(completed[1].costUsd, 6);
    for (const r of ['gpu-a', 'gpu-b']) {
      expect(metricSum(after, 'agentmesh_replica_up', { replica: r })).toBe(1);
      expect(after).toMatch(new RegExp(`^agentmesh_replica_load\\{[^}]*replica="${r}"[^}]*\\} \\d+`, 'm'));
    }
    // the run's session is pinned in both pools
    expect(metricSum(after, 'agentmesh_replica_load')).toBeGreaterThanOrEqual(2);
  });

  it('keeps the session on its replica on the next run of the same session: an affinity hit', async () => {
    const before = await metrics();
    const first = await api('POST', `/v1/tenants/${t}/runs`, { agent: 'shouter', input: 'Shout hello mesh (session turn 1).', sessionId: 'conversation-1' });
    expect(first.status).toBe(201);
    expect((await waitForRun(api, t, first.body.id, 30_000)).status).toBe('completed');
    const second = await api('POST', `/v1/tenants/${t}/runs`, { agent: 'shouter', input: 'Shout hello mesh (session turn 2).', sessionId: 'conversation-1' });
    expect(second.status).toBe(201);
    expect((await waitForRun(api, t, second.body.id, 30_000)).status).toBe('completed');
    const replicas = async (runId: string) => (await journal(runId)).filter((e) => e.event === 'llm.completed').map((e) => `${e.data.data.model}@${e.data.data.replica}`);
    expect(await replicas(second.body.id)).toEqual(await replicas(first.body.id));
    const after = await metrics();
    const moved = (name: string, labels: Record<string, string> = {}) => metricSum(after, name, labels) - metricSum(before, name, labels);
    expect(moved('agentmesh_router_assignments_total', { outcome: 'new' })).toBe(2);
    expect(moved('agentmesh_router_assignments_total', { outcome: 'hit' })).toBe(2);
    expect(moved('agentmesh_router_affinity_hits_total')).toBe(2);
  });

  it('does not call the model again for a recorded reply when the orchestrator is SIGKILLed after llm.completed', async () => {
    let killed = false;
    let runId = '';
    fx.onRequest = async (k) => {
      // the tool call comes after the first reply was journaled: crash the orchestrator right here
      if (!killed && k.startsWith(`${runId}:`)) { killed = true; await mesh.kill('orchestrator', 'SIGKILL'); }
    };
    const callsBefore = modelCalls.length;
    const assignmentsBefore = metricSum(await metrics(), 'agentmesh_router_assignments_total');
    runId = await startRun('Shout hello mesh, even if things crash.');
    const deadline = Date.now() + 20_000;
    while (!killed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(killed).toBe(true);
    expect(modelCalls.length - callsBefore).toBe(1); // the first reply, before the crash
    await mesh.restart('orchestrator');
    const run = await waitForRun(api, t, runId, 30_000);
    expect(run).toMatchObject({ status: 'completed', output: FINAL_TEXT });
    fx.onRequest = undefined;

    // after recovery the model saw the tool's result once; the prompt was not sent again
    const calls = modelCalls.slice(callsBefore);
    expect(calls.map((c) => c.role)).toEqual(['user', 'tool']);
    expect(metricSum(await metrics(), 'agentmesh_router_assignments_total') - assignmentsBefore).toBe(2);
    const events = await journal(runId);
    const called = events.filter((e) => e.event === 'llm.called').map((e) => e.data.data.callKey);
    const completed = events.filter((e) => e.event === 'llm.completed').map((e) => e.data.data.callKey);
    expect(called).toEqual([`${runId}:1:0`, `${runId}:3:0`]);
    expect(completed).toEqual(called);
    // the first call was settled once, not charged again by the replay
    expect(events.filter((e) => e.event === 'budget.settled' && e.data.data.callKey === `${runId}:1:0`)).toHaveLength(1);
    expect(fx.effects.get(`${runId}:2:0`)).toBe(1);
  });
});

async function waitForUsage(api: Api, t: string, models: string[]) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await api('GET', `/v1/tenants/${t}/usage?groupBy=model`);
    const keys = (r.body?.groups ?? []).map((g: { key: string }) => g.key);
    if (r.status === 200 && models.every((m) => keys.includes(m))) return r.body;
    if (Date.now() > deadline) throw new Error(`usage by model never showed ${models.join(', ')}: ${JSON.stringify(r.body)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

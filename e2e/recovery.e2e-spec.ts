import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CommandBus, connectNats } from '#libs/messaging';
import { followEvents, newTenant, startTestMesh, waitForRun, type Api, type Mesh, type SseEvent } from './support/harness.js';
import { startEffectServer, type EffectServer } from './support/effect-server.js';

const STEPS = 8;

describe('recovery: a run survives crashes and never repeats a side effect', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let fx: EffectServer;
  let api: Api;
  let key: string;
  let t: string;

  beforeAll(async () => {
    mesh = await startTestMesh({ AGENTMESH_ACK_WAIT: '2s' });
    fx = await startEffectServer();
    const tenant = await newTenant(mesh, 'crash');
    api = tenant.owner; key = tenant.ownerKey; t = tenant.id;
    const tool = { version: '1', riskTier: 'write', inputSchema: { type: 'object', required: ['i'] }, timeoutMs: 10_000, egress: [`127.0.0.1:${fx.port}`], transport: { kind: 'http', url: `${fx.url}/effect` } };
    expect((await api('PUT', `/v1/tenants/${t}/tools/effect`, tool)).status).toBe(201);
    const steps = Array.from({ length: STEPS }, (_, i) => ({ id: `s${i + 1}`, tool: 'effect', args: { i: i + 1 } }));
    expect((await api('PUT', `/v1/tenants/${t}/agents/multi`, { version: '1', planner: 'graph', tools: ['effect'], steps })).status).toBe(201);
  });
  afterAll(async () => { await fx?.close(); await mesh?.cleanup(); });

  async function journal(runId: string): Promise<SseEvent[]> {
    const events: SseEvent[] = [];
    await followEvents(mesh.gatewayUrl, key, `/v1/tenants/${t}/runs/${runId}/events`, (e) => events.push(e));
    return events;
  }

  function expectEachStepOnce(runId: string, events: SseEvent[]) {
    const keys = Array.from({ length: STEPS }, (_, i) => `${runId}:${i + 1}:0`);
    for (const k of keys) expect(fx.effects.get(k)).toBe(1); // each side effect happened exactly once
    const completed = events.filter((e) => e.event === 'tool.completed').map((e) => e.data.step);
    expect(completed).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1)); // nothing lost, nothing twice
    const started = events.filter((e) => e.event === 'step.started').map((e) => e.data.step);
    expect(started).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    const seqs = events.map((e) => Number(e.id));
    expect(new Set(seqs).size).toBe(seqs.length);
  }

  /**
   * Starts a run of `agent` and SIGKILLs `svc` as the tool receives step `step`'s call (after its
   * side effect); returns once the kill happened (not yet restarted).
   */
  async function runKilledAt(agent: string, step: number, svc: string): Promise<string> {
    let killed = false;
    let runId = '';
    fx.onRequest = async (k) => {
      if (!killed && k === `${runId}:${step}:0`) { killed = true; await mesh.kill(svc, 'SIGKILL'); }
    };
    runId = (await api('POST', `/v1/tenants/${t}/runs`, { agent, input: {} })).body.id;
    const deadline = Date.now() + 15_000;
    while (!killed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(killed).toBe(true);
    return runId;
  }

  it('finishes after the orchestrator is SIGKILLed mid-step, without re-running completed steps', async () => {
    const runId = await runKilledAt('multi', 4, 'orchestrator');
    const before = new Map(fx.calls);
    await mesh.restart('orchestrator');
    const run = await waitForRun(api, t, runId, 30_000);
    expect(run).toMatchObject({ status: 'completed', steps: STEPS });
    expectEachStepOnce(runId, await journal(runId));
    // steps completed before the crash were never called again
    for (let s = 1; s <= 3; s++) expect(fx.calls.get(`${runId}:${s}:0`)).toBe(before.get(`${runId}:${s}:0`));
    fx.onRequest = undefined;
  });

  it('dedupes through the Idempotency-Key when the tool-runner dies between the side effect and the journal append', async () => {
    const runId = await runKilledAt('multi', 3, 'tool-runner');
    await mesh.restart('tool-runner');
    const run = await waitForRun(api, t, runId, 30_000);
    expect(run).toMatchObject({ status: 'completed', steps: STEPS });
    expect(fx.calls.get(`${runId}:3:0`)).toBeGreaterThanOrEqual(2); // called again after the crash...
    expectEachStepOnce(runId, await journal(runId)); // ...but the effect happened once
    fx.onRequest = undefined;
  });

  it('sends a call again with a fresh delegation when the tool-runner dies after redeeming the first one', async () => {
    const cred = { kind: 'bearer', secret: 'fx-bearer-secret', allowedTools: ['effectc'] };
    expect((await api('PUT', `/v1/tenants/${t}/credentials/fxkey`, cred)).status).toBe(201);
    const tool = { version: '1', riskTier: 'write', inputSchema: { type: 'object', required: ['i'] }, timeoutMs: 10_000, egress: [`127.0.0.1:${fx.port}`], transport: { kind: 'http', url: `${fx.url}/effect` }, credential: { name: 'fxkey' } };
    expect((await api('PUT', `/v1/tenants/${t}/tools/effectc`, tool)).status).toBe(201);
    const steps = Array.from({ length: STEPS }, (_, i) => ({ id: `s${i + 1}`, tool: 'effectc', args: { i: i + 1 } }));
    expect((await api('PUT', `/v1/tenants/${t}/agents/multic`, { version: '1', planner: 'graph', tools: ['effectc'], steps })).status).toBe(201);
    // the tool-runner redeemed step 3's single-use delegation and called the tool; it dies before reporting
    const runId = await runKilledAt('multic', 3, 'tool-runner');
    await mesh.restart('tool-runner');
    const run = await waitForRun(api, t, runId, 30_000);
    expect(run).toMatchObject({ status: 'completed', steps: STEPS });
    expect(fx.calls.get(`${runId}:3:0`)).toBe(2); // the redelivered command's delegation was spent: sent again with a fresh one
    expectEachStepOnce(runId, await journal(runId)); // the effect happened once
    for (let i = 1; i <= STEPS; i++) expect(new Set(fx.authorizations.get(`${runId}:${i}:0`))).toEqual(new Set(['Bearer fx-bearer-secret']));
    fx.onRequest = undefined;
  });

  it('changes nothing when a finished run\'s start command is delivered again (a re-publish after the dedupe window)', async () => {
    fx.onRequest = undefined;
    const runId = (await api('POST', `/v1/tenants/${t}/runs`, { agent: 'multi', input: { again: true } })).body.id;
    expect(await waitForRun(api, t, runId)).toMatchObject({ status: 'completed', steps: STEPS });
    const before = await journal(runId);
    const agent = (await api('GET', `/v1/tenants/${t}/agents/multi`)).body;
    const { tenantId: _t, digest: _d, createdAt: _c, ...spec } = agent;
    const nc = await connectNats(mesh.natsUrl, 'e2e-redeliver');
    try {
      // a new message id: JetStream's dedupe does not stop it, the orchestrator sees a first delivery
      await new CommandBus(nc).send('run.start', { tenantId: t, runId, agent: spec, input: { again: true } }, `${runId}:again`);
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      await nc.close();
    }
    const after = await journal(runId);
    expect(after.map((e) => [e.id, e.event])).toEqual(before.map((e) => [e.id, e.event])); // not one event more
    expect(after.filter((e) => e.event === 'run.created')).toHaveLength(1);
    expectEachStepOnce(runId, after);
    expect((await api('GET', `/v1/tenants/${t}/runs/${runId}`)).body).toMatchObject({ status: 'completed', steps: STEPS });
  });

  it('keeps runs going across a broker restart', async () => {
    let restarted = false;
    let runId = '';
    fx.onRequest = async (k) => {
      if (!restarted && k === `${runId}:2:0`) { restarted = true; await mesh.restartNats(); }
    };
    runId = (await api('POST', `/v1/tenants/${t}/runs`, { agent: 'multi', input: {} })).body.id;
    const run = await waitForRun(api, t, runId, 45_000);
    expect(restarted).toBe(true);
    expect(run).toMatchObject({ status: 'completed', steps: STEPS });
    expectEachStepOnce(runId, await journal(runId));
    fx.onRequest = undefined;
  });
});

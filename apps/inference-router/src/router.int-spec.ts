import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, inferenceDeltaSubject, STREAMS, type InferenceChatRequest, type InferenceDelta, type UsageEvent } from '#libs/contracts';
import { connectNats, decodeJson, openBucket, provision, RpcClient, startService, type RunningService } from '#libs/messaging';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { costGovernor } from '../../cost-governor/src/service.js';
import { InferenceService } from './inference.service.js';
import { inferenceRouter } from './service.js';
import { startReplicaSimulator, type ReplicaSimulator } from './simulator/index.js';

const eventually = async <T>(check: () => Promise<T | null | undefined | false> | T | null | undefined | false, what: string, ms = 10_000): Promise<T> => {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

const SYSTEM = 'You are a careful research agent that plans before acting. '.repeat(20);
let runSeq = 0;
const runId = () => `run_${String(++runSeq).padStart(26, '0')}`;

describe('the inference-router against a real nats-server', () => {
  let srv: NatsServerHandle;
  let nc: NatsConnection;
  let rpc: RpcClient;
  const dataDir = mkdtempSync(join(tmpdir(), 'agentmesh-inference-int-'));
  const running: RunningService[] = [];
  const sims: ReplicaSimulator[] = [];

  const baseEnv = () => ({ NATS_URL: srv.url, INFERENCE_ROUTER_PORT: '0', LOG_LEVEL: 'silent', AGENTMESH_DATA_DIR: dataDir, AGENTMESH_ROUTER_HEALTH_INTERVAL: '150ms', AGENTMESH_ROUTER_HEALTH_TIMEOUT: '100ms' });
  const startRouter = async (env: Record<string, string>) => {
    const svc = await startService({ ...inferenceRouter, env: { ...baseEnv(), ...env } });
    running.push(svc);
    return { svc, inference: svc.app.get(InferenceService) };
  };
  const stop = async (svc: RunningService) => {
    await svc.close();
    running.splice(running.indexOf(svc), 1);
  };
  const chat = (over: Partial<InferenceChatRequest> & { sessionId: string }) =>
    rpc.call('inference.chat', {
      tenantId: 'acme', runId: over.runId ?? runId(), step: 1, model: 'sim-70b', max_tokens: 8,
      messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Find the answer.' }],
      ...over,
    });

  beforeAll(async () => {
    srv = await startNatsServer();
    nc = await connectNats(srv.url, 'inference-int');
    await provision(nc, { replicas: 1, ackWaitMs: 30_000 });
    rpc = new RpcClient(nc, 15_000);
  });

  afterAll(async () => {
    for (const s of [...running]) await s.close();
    for (const s of sims) await s.close().catch(() => undefined);
    await nc?.close();
    await srv?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe('with in-process simulators (no AGENTMESH_REPLICAS)', () => {
    let router: Awaited<ReturnType<typeof startRouter>>;
    let governor: RunningService;

    beforeAll(async () => {
      governor = await startService({ ...costGovernor, env: { NATS_URL: srv.url, COST_GOVERNOR_PORT: '0', LOG_LEVEL: 'silent' } });
      running.push(governor);
      router = await startRouter({ AGENTMESH_SIM_REPLICAS: '2', AGENTMESH_SIM_TIME_SCALE: '0.01' });
    });

    it('starts simulators, writes its service token into the data folder, and answers inference.chat', async () => {
      expect(router.inference.simulators?.specs.map((s) => s.id)).toEqual(['sim-0', 'sim-1']);
      expect(readFileSync(join(dataDir, 'inference.token'), 'utf8')).toMatch(/^amt_[A-Za-z0-9_-]{43}\n$/);
      const res = await chat({ sessionId: 'sess-basic' });
      expect(res).toMatchObject({ model: 'sim-70b', tier: 'explicit', placement: 'new', finishReason: 'length', message: { role: 'assistant' } });
      expect(res.replica).toMatch(/^sim-[01]$/);
      expect(res.usage).toMatchObject({ outputTokens: 8, source: 'upstream' });
      expect(res.usage.inputTokens).toBeGreaterThan(250);
      expect(res.costUsd).toBeGreaterThan(0);
      expect(res.settled).toBeUndefined();
    });

    it('keeps a session on its replica turn after turn, where the prefix cache makes later turns cheaper', async () => {
      const messages: InferenceChatRequest['messages'] = [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Plan the trip.' }];
      const replicas: string[] = [];
      const placements: string[] = [];
      let cached = 0;
      for (let turn = 1; turn <= 4; turn++) {
        const res = await chat({ sessionId: 'sess-sticky', step: turn, messages });
        replicas.push(res.replica);
        placements.push(res.placement);
        if (turn > 1) cached = Math.min(cached || Number.POSITIVE_INFINITY, res.usage.cachedTokens);
        messages.push({ role: 'assistant', content: res.message.content }, { role: 'user', content: `Tool result ${turn}: ${'data '.repeat(40)}` });
      }
      expect(new Set(replicas).size).toBe(1);
      expect(placements).toEqual(['new', 'hit', 'hit', 'hit']);
      expect(cached).toBeGreaterThan(200);
    });

    it('routes by hint to the cheap or the frontier model', async () => {
      const easy = await chat({ sessionId: 'sess-hint', model: undefined, hint: 'easy' });
      const hard = await chat({ sessionId: 'sess-hint', model: undefined, hint: 'hard' });
      expect(easy).toMatchObject({ model: 'sim-8b', tier: 'cheap', rule: 'planner-easy' });
      expect(hard).toMatchObject({ model: 'sim-70b', tier: 'frontier', rule: 'planner-hard' });
      await expect(chat({ sessionId: 'sess-hint', model: 'gpt-99' })).rejects.toMatchObject({ code: 'not_found' });
    });

    it('streams deltas on the run\'s delta subject and answers with the whole reply', async () => {
      const rid = runId();
      const deltas: InferenceDelta[] = [];
      const sub = nc.subscribe(inferenceDeltaSubject('acme', rid), { callback: (_e, m) => void deltas.push(decodeJson<InferenceDelta>(m.data)) });
      await nc.flush();
      const res = await chat({ sessionId: 'sess-stream', runId: rid, step: 3, stream: true, max_tokens: 12 });
      await nc.flush();
      await eventually(() => deltas.some((d) => d.finishReason !== undefined), 'the last delta');
      sub.unsubscribe();
      expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i));
      expect(deltas.every((d) => d.runId === rid && d.step === 3)).toBe(true);
      expect(deltas.map((d) => d.content ?? '').join('')).toBe(res.message.content);
      expect(deltas.at(-1)!.finishReason).toBe('length');
      expect(res.usage.outputTokens).toBe(12);
    });

    it('settles the actual cost of a reserved call with the cost-governor', async () => {
      const rid = runId();
      const callKey = `${rid}:1:0`;
      await rpc.call('budget.put', { tenantId: 'acme', budget: { limitUsd: 100, period: 'month' } });
      const granted = await rpc.call('budget.reserve', { tenantId: 'acme', callKey, runId: rid, agent: 'planner', kind: 'llm', model: 'sim-70b', usd: 1 });
      expect(granted.granted).toBe(true);
      const res = await chat({ sessionId: 'sess-settle', runId: rid, callKey, agent: 'planner' });
      expect(res.settled).toEqual({ usd: res.costUsd, replayed: false });
      const budget = await rpc.call('budget.get', { tenantId: 'acme' });
      expect(budget.spentUsd).toBeCloseTo(res.costUsd, 6);
      expect(budget.reservedUsd).toBe(0);
      // the orchestrator settling again with the same key is answered, not charged twice
      expect(await rpc.call('budget.settle', { tenantId: 'acme', callKey, usd: res.costUsd })).toEqual({ usd: res.costUsd, replayed: true });
    });

    it('meters a call without a reservation as a usage event on AGENTMESH_USAGE', async () => {
      const rid = runId();
      const res = await chat({ sessionId: 'sess-meter', runId: rid, agent: 'bot' });
      const jsm = await jetstreamManager(nc);
      const found = await eventually(async () => {
        const info = await jsm.streams.info(STREAMS.usage.name);
        for (let seq = info.state.last_seq; seq >= Math.max(1, info.state.first_seq); seq--) {
          const m = await jsm.streams.getMessage(STREAMS.usage.name, { seq }).catch(() => null);
          const u = m ? decodeJson<UsageEvent>(m.data) : null;
          if (u?.runId === rid) return u;
        }
        return null;
      }, 'the usage event');
      expect(found).toMatchObject({ tenantId: 'acme', agent: 'bot', kind: 'llm', model: 'sim-70b', usd: res.costUsd, inputTokens: res.usage.inputTokens, outputTokens: res.usage.outputTokens });
      expect(found.callKey).toMatch(/^inference:/);
    });

    it('releases a session\'s pins on inference.release', async () => {
      await chat({ sessionId: 'sess-release' });
      expect(router.inference.pools.assignment('sim-70b', 'acme', 'sess-release')).toBeDefined();
      expect(await rpc.call('inference.release', { tenantId: 'acme', sessionId: 'sess-release' })).toEqual({ released: 1 });
      expect(router.inference.pools.assignment('sim-70b', 'acme', 'sess-release')).toBeUndefined();
      await expect(rpc.call('inference.release', { tenantId: 'acme', sessionId: 'bad id' })).rejects.toMatchObject({ code: 'invalid_argument' });
    });

    afterAll(async () => {
      await stop(router.svc);
      await stop(governor);
    });
  });

  describe('with configured replicas', () => {
    let a: ReplicaSimulator;
    let b: ReplicaSimulator;
    let replicasEnv: string;

    beforeAll(async () => {
      a = await startReplicaSimulator({ replicaId: 'rep-a', model: 'llama', timeScale: 0.01 });
      b = await startReplicaSimulator({ replicaId: 'rep-b', model: 'llama', timeScale: 0.01 });
      sims.push(a, b);
      replicasEnv = JSON.stringify([
        { id: 'rep-a', url: a.url, models: ['llama'], capacity: 50 },
        { id: 'rep-b', url: b.url, models: ['llama'], capacity: 50 },
      ]);
    });
    const llama = (sessionId: string, extra: Partial<InferenceChatRequest> = {}) => chat({ sessionId, model: 'llama', tenantId: 'kv-tenant', ...extra });
    const simOf = (id: string) => (id === 'rep-a' ? a : b);

    it('keeps pins in JetStream KV, so a restarted router sends the session to the same replica', async () => {
      const first = await startRouter({ AGENTMESH_REPLICAS: replicasEnv });
      const r1 = await llama('sess-kv', { step: 1 });
      expect(r1.placement).toBe('new');
      await first.inference.flush();
      const kv = await openBucket(nc, BUCKETS.assignments);
      const keys: string[] = [];
      for await (const k of await kv.keys('kv-tenant.sess-kv.>')) keys.push(k);
      expect(keys).toHaveLength(1);
      expect(decodeJson<{ replica: string; turns: number; model: string }>((await kv.get(keys[0]))!.value)).toMatchObject({ replica: r1.replica, model: 'llama', turns: 1 });
      await stop(first.svc);

      const second = await startRouter({ AGENTMESH_REPLICAS: replicasEnv });
      expect(second.inference.pools.assignment('llama', 'kv-tenant', 'sess-kv')).toMatchObject({ replica: r1.replica, turns: 1 });
      const r2 = await llama('sess-kv', { step: 2 });
      expect(r2).toMatchObject({ replica: r1.replica, placement: 'hit' });
      await stop(second.svc);
    });

    it('moves a session off a stopped replica on its next turn, and uses the replica for new sessions once it returns', async () => {
      const { svc, inference } = await startRouter({ AGENTMESH_REPLICAS: replicasEnv });
      try {
        const r1 = await llama('sess-fail', { step: 1 });
        const victim = simOf(r1.replica);
        const port = victim.port;
        await victim.close();
        const r2 = await llama('sess-fail', { step: 2 });
        const other = r1.replica === 'rep-a' ? 'rep-b' : 'rep-a';
        expect(r2).toMatchObject({ replica: other, placement: 'moved' });
        expect(inference.registry.view(r1.replica)?.up).toBe(false);
        const r3 = await llama('sess-fail', { step: 3 });
        expect(r3).toMatchObject({ replica: other, placement: 'hit' });

        // the replica comes back on the same address: the health checks mark it up
        const back = await startReplicaSimulator({ replicaId: r1.replica, model: 'llama', timeScale: 0.01, port });
        sims.push(back);
        if (r1.replica === 'rep-a') a = back;
        else b = back;
        await eventually(() => inference.registry.view(r1.replica)?.up, 'the replica to be marked up');
        const placed: string[] = [];
        for (let i = 0; i < 8; i++) placed.push((await llama(`sess-new-${i}`)).replica);
        expect(placed).toContain(r1.replica);
        // the moved session stays where it went
        expect((await llama('sess-fail', { step: 4 })).replica).toBe(other);
      } finally {
        await stop(svc);
      }
    });

    it('moves sessions off a replica whose health checks fail, without failing a turn', async () => {
      const { svc, inference } = await startRouter({ AGENTMESH_REPLICAS: replicasEnv });
      try {
        const r1 = await llama('sess-sick', { step: 1 });
        const sick = simOf(r1.replica);
        sick.setHealthy(false);
        await eventually(() => inference.registry.view(r1.replica)?.up === false, 'the health checks to mark it down');
        const before = sick.stats().httpRequests;
        const completedBefore = sick.stats().requests;
        const r2 = await llama('sess-sick', { step: 2 });
        expect(r2.placement).toBe('moved');
        expect(r2.replica).not.toBe(r1.replica);
        // the turn went straight to the healthy replica: only health probes reached the sick one
        expect(sick.stats().requests).toBe(completedBefore);
        expect(sick.stats().httpRequests - before).toBeLessThan(5);
        sick.setHealthy(true);
        await eventually(() => inference.registry.view(r1.replica)?.up, 'the replica to be marked up again');
      } finally {
        await stop(svc);
      }
    });

    it('changes replicas at run time through the admin API, stored in KV', async () => {
      const { svc, inference } = await startRouter({ AGENTMESH_REPLICAS: replicasEnv, AGENTMESH_INFERENCE_TOKEN: 'int-test-token-0123456789' });
      try {
        const auth = { authorization: 'Bearer int-test-token-0123456789', 'content-type': 'application/json' };
        expect((await fetch(`${svc.url}/admin/replicas`)).status).toBe(401);
        const list = (await (await fetch(`${svc.url}/admin/replicas`, { headers: auth })).json()) as { replicas: Array<{ id: string; up: boolean; source: string }> };
        expect(list.replicas.map((r) => [r.id, r.source])).toEqual([['rep-a', 'config'], ['rep-b', 'config']]);
        const c = await startReplicaSimulator({ replicaId: 'rep-c', model: 'mistral', timeScale: 0.01 });
        sims.push(c);
        const put = await fetch(`${svc.url}/admin/replicas/rep-c`, { method: 'PUT', headers: auth, body: JSON.stringify({ url: c.url, models: ['mistral'], capacity: 4 }) });
        expect(put.status).toBe(201);
        expect(await put.json()).toMatchObject({ id: 'rep-c', models: ['mistral'], capacity: 4, up: true, source: 'admin' });
        const kv = await openBucket(nc, BUCKETS.replicas);
        expect(decodeJson<{ spec: { url: string } }>((await kv.get('rep-c'))!.value).spec.url).toBe(c.url);
        const res = await chat({ sessionId: 'sess-admin', model: 'mistral', tenantId: 'kv-tenant' });
        expect(res.replica).toBe('rep-c');
        const bad = await fetch(`${svc.url}/admin/replicas/rep-d`, { method: 'PUT', headers: auth, body: JSON.stringify({ url: 'ftp://x', models: [], apiKey: 'sk-x' }) });
        expect(bad.status).toBe(400);
        expect(JSON.stringify(await bad.json())).not.toContain('sk-x');
        expect((await fetch(`${svc.url}/admin/replicas/rep-c`, { method: 'DELETE', headers: auth })).status).toBe(204);
        expect(inference.registry.has('rep-c')).toBe(false);
        await expect(chat({ sessionId: 'sess-admin', model: 'mistral', tenantId: 'kv-tenant' })).rejects.toMatchObject({ code: 'not_found' });
        expect(await kv.get('rep-c').then((e) => e?.operation)).toBe('DEL');
      } finally {
        await stop(svc);
      }
    });
  });
});

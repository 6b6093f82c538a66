import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, STREAMS, usageSubject, type ReserveRequest } from '#libs/contracts';
import { loadConfig } from '#libs/config';
import { connectNats, provision, RpcClient, startService, type RunningService } from '#libs/messaging';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { createLogger } from '#libs/telemetry';
import { createKvRepositories, type Repositories } from '#libs/store';
import { BudgetGate } from '../../orchestrator/src/run-engine.service.js';
import { configure, emptyBudget, reserve, toMicros, type BudgetDoc } from './budget-math.js';
import { budgetsCasStore, CasBook, kvCasStore } from './cas-book.js';
import { Governor } from './governor.service.js';
import { USAGE_ROLLUPS_CHECKPOINT } from './usage.js';
import { costGovernor } from './service.js';

const eventually = async <T>(check: () => Promise<T | null | undefined | false> | T | null | undefined | false, what: string, ms = 10_000): Promise<T> => {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe('the cost-governor against a real nats-server', () => {
  let srv: NatsServerHandle;
  const conns: NatsConnection[] = [];
  let g1: Governor;
  let g2: Governor;
  const config = loadConfig('cost-governor', {});
  const logger = createLogger('cost-governor', 'silent');
  let seq = 0;
  const call = (tenantId: string, usd: number, extra: Partial<ReserveRequest> = {}): ReserveRequest =>
    ({ tenantId, callKey: `run_T:${++seq}:0`, runId: 'run_T', agent: 'bot', kind: 'tool', tool: 'search', usd, ...extra });

  const governors: Governor[] = [];
  const stores: Repositories[] = [];
  const governor = async (): Promise<Governor> => {
    const nc = await connectNats(srv.url, 'cost-governor-test');
    conns.push(nc);
    const store = await createKvRepositories(nc, { mongodbUri: undefined });
    stores.push(store);
    const g = new Governor(nc, config, logger, store);
    await g.onModuleInit();
    governors.push(g);
    return g;
  };

  beforeAll(async () => {
    srv = await startNatsServer();
    const nc = await connectNats(srv.url, 'provision');
    conns.push(nc);
    await provision(nc, { replicas: 1, ackWaitMs: 30_000 });
    // two governors with their own connections and caches: their writes race for real
    g1 = await governor();
    g2 = await governor();
  });
  afterAll(async () => {
    for (const g of governors) g.onModuleDestroy();
    for (const st of stores) await st.close();
    for (const nc of conns) await nc.close();
    await srv.stop();
  });

  it('never overspends a budget under 100 parallel reservations from two governors', async () => {
    await g1.put('par', { limitUsd: 5, period: 'month' });
    const reqs = Array.from({ length: 100 }, (_, i) => call('par', 0.1, { agent: `a${i % 4}` }));
    const results = await Promise.all(reqs.map((r, i) => (i % 2 ? g1 : g2).reserve(r)));
    const granted = results.filter((r) => r.granted);
    expect(granted).toHaveLength(50);
    expect(results.filter((r) => !r.granted).every((r) => !r.granted && r.scope === 'tenant')).toBe(true);
    const view = await g1.get('par');
    expect(view).toMatchObject({ limitUsd: 5, reservedUsd: 5, spentUsd: 0, remainingUsd: 0 });

    // settle every granted call at a lower actual cost, in parallel, twice each
    const grantedReqs = reqs.filter((_, i) => results[i].granted);
    await Promise.all(grantedReqs.flatMap((r, i) => [g1, g2].map((g) => g.settle({ tenantId: 'par', callKey: r.callKey, usd: i < 25 ? 0.1 : 0.05 }))));
    const after = await g2.get('par');
    expect(after).toMatchObject({ reservedUsd: 0, spentUsd: 3.75, remainingUsd: 1.25 });
    expect(after.spentUsd).toBeLessThanOrEqual(after.limitUsd!);
  });

  it.each(['a KV bucket', 'the budgets repository'])('keeps compare-and-set atomic when every reservation is its own write and four writers race (%s)', async (over) => {
    // no group commit here: 100 separate compare-and-set writes from four caches on four connections
    const fourth = await connectNats(srv.url, 'writer-4');
    conns.push(fourth);
    const four = [...conns.slice(0, 3), fourth];
    const tenant = over === 'a KV bucket' ? 'cas' : 'cas-repo';
    const casStores = over === 'a KV bucket'
      ? await Promise.all(four.map(async (nc) => kvCasStore<BudgetDoc>(await new Kvm(nc).open(BUCKETS.budgets))))
      : await Promise.all(four.map(async (nc) => {
        const st = await createKvRepositories(nc, { mongodbUri: undefined });
        stores.push(st);
        return budgetsCasStore<BudgetDoc>(st);
      }));
    const books = casStores.map((cs) => new CasBook<BudgetDoc>(cs, (t) => emptyBudget(t, Date.now()), undefined, 1));
    await books[0].apply(tenant, ['budget'], (d) => { configure(d, { limitUsd: 2.5, period: 'month' }, Date.now()); return { result: null, changed: true }; });
    const outcomes = await Promise.all(Array.from({ length: 100 }, (_, i) => books[i % 4].apply(tenant, ['budget'], (d) => {
      const r = reserve(d, { callKey: `c${i}`, micros: toMicros(0.1), agent: 'bot' }, Date.now());
      return { result: r.outcome.granted, changed: r.changed };
    })));
    expect(outcomes.filter(Boolean)).toHaveLength(25);
    const stored = await books[1].read(tenant, ['budget']);
    expect(stored.doc.reserved).toBe(toMicros(2.5));
    expect(Object.keys(stored.doc.holds)).toHaveLength(25);
    expect(books.reduce((n, b) => n + b.conflicts, 0)).toBeGreaterThan(0); // the writers really raced
  });

  it('reserves idempotently and settles a call once, however often either is repeated', async () => {
    await g1.put('idem', { limitUsd: 10, period: 'day' });
    const r = call('idem', 1);
    const reserves = await Promise.all([g1, g2, g1, g2, g1].map((g) => g.reserve(r)));
    expect(reserves.every((x) => x.granted && x.usd === 1)).toBe(true);
    expect(reserves.filter((x) => !x.replayed).length).toBeLessThanOrEqual(2); // at most the racers of the first write
    expect((await g1.get('idem')).reservedUsd).toBe(1);

    const settles = await Promise.all([g1, g2, g2].map((g) => g.settle({ tenantId: 'idem', callKey: r.callKey, usd: 0.4 })));
    expect(settles.every((x) => x.usd === 0.4)).toBe(true);
    expect(settles.filter((x) => !x.replayed)).toHaveLength(1);
    expect(await g2.settle({ tenantId: 'idem', callKey: r.callKey, usd: 0.9 })).toEqual({ usd: 0.4, replayed: true });
    expect(await g1.get('idem')).toMatchObject({ spentUsd: 0.4, reservedUsd: 0 });

    // one usage event for the call on AGENTMESH_USAGE
    const jsm = await jetstreamManager(conns[0]);
    const info = await jsm.streams.info(STREAMS.usage.name, { subjects_filter: usageSubject('idem') });
    expect(info.state.subjects?.[usageSubject('idem')]).toBe(1);
  });

  it('refuses without holding anything, and answers a refused call by the budget of the moment when asked again', async () => {
    await g1.put('refuse', { limitUsd: 1, period: 'month' });
    const r = call('refuse', 2);
    expect(await g1.reserve(r)).toMatchObject({ granted: false, scope: 'tenant', replayed: false });
    expect((await g1.get('refuse')).reservedUsd).toBe(0);
    await g1.put('refuse', { limitUsd: 100, period: 'month' });
    expect(await g2.reserve(r)).toMatchObject({ granted: true, replayed: false });
  });

  it('applies run and agent caps', async () => {
    await g1.put('caps', { limitUsd: 100, period: 'month', agents: { bot: { limitUsd: 1 } } });
    expect(await g1.reserve(call('caps', 0.5, { run: { spentUsd: 0.75, limitUsd: 1 } }))).toMatchObject({ granted: false, scope: 'run' });
    expect(await g1.reserve(call('caps', 0.75))).toMatchObject({ granted: true });
    expect(await g2.reserve(call('caps', 0.5))).toMatchObject({ granted: false, scope: 'agent' });
    expect(await g2.reserve(call('caps', 0.5, { agent: 'other' }))).toMatchObject({ granted: true });
  });

  it('opens the tenant circuit breaker at the cap, which the orchestrator sees without asking, and closes it when the budget is raised', async () => {
    const nc = await connectNats(srv.url, 'orchestrator-test');
    conns.push(nc);
    const gate = await BudgetGate.open(nc, loadConfig('orchestrator', {}), logger);
    try {
      await g1.put('brk', { limitUsd: 1, period: 'month' });
      expect(gate.breakerReason('brk')).toBeNull();
      const r = call('brk', 1);
      await g1.reserve(r);
      await g2.settle({ tenantId: 'brk', callKey: r.callKey, usd: 1 });
      expect((await g1.get('brk')).state).toBe('exhausted');
      const reason = await eventually(() => gate.breakerReason('brk'), 'the breaker to open');
      expect(reason).toContain('exhausted');
      const kv = await new Kvm(nc).open(BUCKETS.budgets);
      expect((await kv.get('brk.breaker'))?.json<{ open: boolean }>().open).toBe(true);

      await g2.put('brk', { limitUsd: 2, period: 'month' }); // answers after the flag is written
      expect((await kv.get('brk.breaker'))?.json<{ open: boolean }>().open).toBe(false);
      await eventually(() => gate.breakerReason('brk') === null, 'the breaker to close');
      // a gate started now reads the current flags before its first call
      await g1.put('brk', { limitUsd: 0, period: 'month' });
      const late = await BudgetGate.open(nc, loadConfig('orchestrator', {}), logger);
      expect(late.breakerReason('brk')).not.toBeNull();
      late.close();
    } finally {
      gate.close();
    }
  });

  it('serves usage from hourly rollups, grouped by agent or tool, counting each call once', async () => {
    await g1.put('use', { limitUsd: null, period: 'month' });
    for (const [agent, tool, usd] of [['a', 'search', 0.1], ['a', 'fetch', 0.2], ['b', 'search', 0.3]] as const) {
      const r = call('use', usd, { agent, tool });
      await g1.reserve(r);
      await g1.settle({ tenantId: 'use', callKey: r.callKey, usd });
      await g2.settle({ tenantId: 'use', callKey: r.callKey, usd });
    }
    const from = new Date(Date.now() - 3600_000);
    const to = new Date(Date.now() + 60_000);
    const byTool = await eventually(async () => {
      const rep = await g2.report('use', from, to, 'tool');
      return rep.totals.calls === 3 ? rep : null;
    }, 'the rollups to fold three calls');
    expect(byTool.totals.usd).toBeCloseTo(0.6, 6);
    expect(byTool.groups).toEqual([
      { key: 'search', usd: 0.4, calls: 2, inputTokens: 0, outputTokens: 0 },
      { key: 'fetch', usd: 0.2, calls: 1, inputTokens: 0, outputTokens: 0 },
    ]);
    const byAgent = await g1.report('use', from, to, 'agent');
    expect(byAgent.groups.map((g) => [g.key, g.usd])).toEqual([['a', 0.3], ['b', 0.3]]);
    expect((await g1.report('use', new Date(Date.now() - 10 * 3600_000), new Date(Date.now() - 5 * 3600_000))).totals.calls).toBe(0);
  });

  it('keeps the rollups in the store and resumes the fold from its checkpoint', async () => {
    await g1.put('fold', { limitUsd: null, period: 'month' });
    const r = call('fold', 0.25);
    await g1.reserve(r);
    await g1.settle({ tenantId: 'fold', callKey: r.callKey, usd: 0.25 });
    const from = new Date(Date.now() - 3600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    // written through the repository (libs/store), read back by anyone holding one
    const rep = await eventually(async () => {
      const x = await stores[0].forTenant('fold').usage.report({ from, to });
      return x.totals.calls === 1 ? x : null;
    }, 'the store to hold the call');
    expect(rep.totals).toEqual({ usd: 0.25, calls: 1, inputTokens: 0, outputTokens: 0 });
    const jsm = await jetstreamManager(conns[0]);
    const last = (await jsm.streams.info(STREAMS.usage.name)).state.last_seq;
    await eventually(async () => (await stores[0].checkpoints.get(USAGE_ROLLUPS_CHECKPOINT)) >= last, 'the checkpoint to reach the stream end');
    // a governor started now folds from the checkpoint: it re-reads nothing already folded
    const g3 = await governor();
    await new Promise((res) => setTimeout(res, 300));
    expect(g3.usage.foldedSeq).toBe(0);
    const r2 = call('fold', 0.5);
    await g3.reserve(r2);
    await g3.settle({ tenantId: 'fold', callKey: r2.callKey, usd: 0.5 });
    await eventually(() => g3.usage.foldedSeq > last, 'the new governor to fold the new call');
    const after = await eventually(async () => {
      const x = await g3.report('fold', new Date(from), new Date(to));
      return x.totals.calls === 2 ? x : null;
    }, 'two calls');
    expect(after.totals.usd).toBeCloseTo(0.75, 6);
  });

  it('meters an LLM call reserved for `auto` under the model its settlement names', async () => {
    await g1.put('llm', { limitUsd: null, period: 'month' });
    const r: ReserveRequest = { tenantId: 'llm', callKey: `run_T:${++seq}:0`, runId: 'run_T', agent: 'bot', kind: 'llm', model: 'auto', usd: 0.5 };
    await g1.reserve(r);
    const usage = { inputTokens: 120, outputTokens: 30 };
    await g2.settle({ tenantId: 'llm', callKey: r.callKey, usd: 0.01, usage, call: { runId: 'run_T', agent: 'bot', kind: 'llm', model: 'sim-8b' } });
    const from = new Date(Date.now() - 3600_000);
    const to = new Date(Date.now() + 60_000);
    const byModel = await eventually(async () => {
      const rep = await g1.report('llm', from, to, 'model');
      return rep.totals.calls === 1 ? rep : null;
    }, 'the rollups to fold the call');
    expect(byModel.groups).toEqual([{ key: 'sim-8b', usd: 0.01, calls: 1, ...usage }]);
  });

  it('answers reserve, settle, budget and usage over NATS RPC (the service itself)', async () => {
    let svc: RunningService | undefined;
    try {
      svc = await startService({ ...costGovernor, env: { NATS_URL: srv.url, COST_GOVERNOR_PORT: '0', LOG_LEVEL: 'silent' } });
      const nc = await connectNats(srv.url, 'rpc-test');
      conns.push(nc);
      const rpc = new RpcClient(nc);
      await rpc.call('budget.put', { tenantId: 'rpc', budget: { limitUsd: 1, period: 'day' } });
      const r = call('rpc', 0.6);
      expect(await rpc.call('budget.reserve', r)).toEqual({ granted: true, usd: 0.6, replayed: false });
      expect(await rpc.call('budget.reserve', r)).toEqual({ granted: true, usd: 0.6, replayed: true });
      expect(await rpc.call('budget.reserve', call('rpc', 0.6))).toMatchObject({ granted: false, scope: 'tenant' });
      expect(await rpc.call('budget.settle', { tenantId: 'rpc', callKey: r.callKey, usd: 0.5 })).toEqual({ usd: 0.5, replayed: false });
      expect(await rpc.call('budget.get', { tenantId: 'rpc' })).toMatchObject({ limitUsd: 1, spentUsd: 0.5, reservedUsd: 0, state: 'ok', period: 'day' });
      await expect(rpc.call('budget.put', { tenantId: 'rpc', budget: { limitUsd: -1, period: 'week' } as never })).rejects.toMatchObject({ code: 'invalid_argument' });
      await expect(rpc.call('budget.reserve', { ...call('rpc', 0.1), callKey: 'bad key with spaces' })).rejects.toMatchObject({ code: 'invalid_argument' });
    } finally {
      await svc?.close();
    }
  });
});

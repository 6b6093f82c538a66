import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import type { AppConfig } from '#libs/config';
import { connectNats, provision } from '#libs/messaging';
import { createLogger } from '#libs/telemetry';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { ActiveRuns } from './active-runs.js';

const logger = createLogger('gateway', 'silent');
const config = (cap: number) => ({ maxConcurrentRunsPerTenant: cap }) as AppConfig;

/**
 * The concurrent-run cap as two services share it: gateways admit runs into the tenant's set and
 * an orchestrator removes them as they end, each with its own cached copy of the set.
 */
describe('the active-run set shared by gateways and an orchestrator', () => {
  let srv: NatsServerHandle;
  const conns: NatsConnection[] = [];
  let gateway: ActiveRuns;
  let gateway2: ActiveRuns;
  let orchestrator: ActiveRuns;

  const open = async (name: string, cap: number): Promise<ActiveRuns> => {
    const nc = await connectNats(srv.url, name);
    conns.push(nc);
    const a = new ActiveRuns(nc, config(cap), logger);
    await a.onModuleInit();
    return a;
  };

  beforeAll(async () => {
    srv = await startNatsServer();
    const nc = await connectNats(srv.url, 'limits-provision');
    conns.push(nc);
    await provision(nc, { replicas: 1, ackWaitMs: 5000 });
    gateway = await open('limits-gateway', 2);
    gateway2 = await open('limits-gateway-2', 2);
    orchestrator = await open('limits-orchestrator', 2);
  });
  afterAll(async () => {
    for (const nc of conns) await nc.close();
    await srv?.stop();
  });

  it('admits up to the cap and admits again once the orchestrator has ended runs, though the gateway\'s copy says full', async () => {
    const t = 't1';
    await gateway.admit(t, 'run_a');
    await gateway.admit(t, 'run_b');
    await expect(gateway.admit(t, 'run_c')).rejects.toMatchObject({ code: 'resource_exhausted', extra: { reason: 'concurrent_runs' } });
    await Promise.all([orchestrator.finish(t, 'run_a'), orchestrator.finish(t, 'run_b')]);
    await gateway.admit(t, 'run_c');
    await gateway.admit(t, 'run_d');
    expect(await gateway.count(t)).toBe(2);
  });

  it('gives the slot back when an admission fails after it was counted', async () => {
    const t = 't2';
    await gateway.admit(t, 'run_a');
    await gateway.release(t, 'run_a');
    expect(await gateway.count(t)).toBe(0);
  });

  it('never lets 40 concurrent admissions on two gateways pass a cap of 2', async () => {
    const t = 't3';
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => (i % 2 ? gateway : gateway2).admit(t, `run_${i}`)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    expect(await gateway.count(t)).toBe(2);
  });

  it('keeps the count exact while 200 runs are admitted and ended concurrently on three instances', async () => {
    const t = 't4';
    const big = [await open('big-gw-1', 1000), await open('big-gw-2', 1000)];
    const orch = await open('big-orch', 1000);
    await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      await big[i % 2].admit(t, `run_${i}`);
      if (i % 4 !== 0) await orch.finish(t, `run_${i}`); // three in four end
    }));
    expect(await big[0].count(t)).toBe(50);
  });

  it('takes ends again after a batch failed to reach the store', async () => {
    const t = 't6';
    const flaky = await open('limits-flaky', 10);
    await gateway.admit(t, 'run_x');
    // the store fails this instance's next read: its batch fails before it is applied
    const kv = (flaky as unknown as { kv: { get: (...a: unknown[]) => Promise<unknown> } }).kv;
    const get = kv.get.bind(kv);
    kv.get = () => Promise.reject(new Error('connection lost'));
    await expect(flaky.finish(t, 'run_x')).rejects.toThrow('connection lost');
    kv.get = get;
    // the next end on the same instance starts a new batch and is written
    await flaky.finish(t, 'run_x');
    expect(await gateway.count(t)).toBe(0);
  });

  it('drops runs the journal does not know once they are older than a lost admission, when the tenant is at its cap', async () => {
    const t = 't5';
    const long = Date.now() - 10 * 60_000;
    await gateway.admit(t, 'run_lost_1', undefined, long);
    await gateway.admit(t, 'run_lost_2', undefined, long);
    // at the cap: the two runs have no journal (their start never ran) and are old: reconciled away
    await gateway.admit(t, 'run_new');
    expect(await gateway.count(t)).toBe(1);
  });
});

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
 * The concurrent-run cap as two services share it: a gateway admits runs into the tenant's set and
 * an orchestrator removes them as they end, each with its own cached copy of the set.
 */
describe('the active-run set shared by a gateway and an orchestrator', () => {
  let srv: NatsServerHandle;
  let ncGateway: NatsConnection;
  let ncOrchestrator: NatsConnection;
  let gateway: ActiveRuns;
  let orchestrator: ActiveRuns;

  beforeAll(async () => {
    srv = await startNatsServer();
    ncGateway = await connectNats(srv.url, 'limits-gateway');
    ncOrchestrator = await connectNats(srv.url, 'limits-orchestrator');
    await provision(ncGateway, { replicas: 1, ackWaitMs: 5000 });
    gateway = new ActiveRuns(ncGateway, config(2), logger);
    orchestrator = new ActiveRuns(ncOrchestrator, config(2), logger);
    await gateway.onModuleInit();
    await orchestrator.onModuleInit();
  });
  afterAll(async () => {
    await ncGateway?.close();
    await ncOrchestrator?.close();
    await srv?.stop();
  });

  it('frees the slot of a run that ends before its admission is committed, though the orchestrator\'s copy predates the reservation', async () => {
    // the orchestrator caches the (empty) set
    expect(await orchestrator.finish('t1', 'run_nothing')).toBeUndefined();
    // the gateway reserves a slot; the run starts and ends before the gateway commits it
    const token = await gateway.reserve('t1');
    await orchestrator.finish('t1', 'run_fast'); // must see the reservation and leave a tombstone
    await gateway.commit('t1', token, 'run_fast');
    expect(await gateway.count('t1')).toBe(0);
  });

  it('admits up to the cap and admits again once the orchestrator has ended runs, whatever either side had cached', async () => {
    const t = 't2';
    for (const id of ['run_a', 'run_b']) await gateway.commit(t, await gateway.reserve(t), id);
    await expect(gateway.reserve(t)).rejects.toMatchObject({ code: 'resource_exhausted', extra: { reason: 'concurrent_runs' } });
    // the gateway's copy says "full"; the orchestrator ends both runs
    await orchestrator.finish(t, 'run_a');
    await orchestrator.finish(t, 'run_b');
    await gateway.commit(t, await gateway.reserve(t), 'run_c');
    await gateway.commit(t, await gateway.reserve(t), 'run_d');
    expect(await gateway.count(t)).toBe(2);
  });

  it('never lets 40 concurrent admissions on two instances pass a cap of 2', async () => {
    const t = 't3';
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => (i % 2 ? gateway : orchestrator).reserve(t)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    expect(await gateway.count(t)).toBe(2);
  });
});

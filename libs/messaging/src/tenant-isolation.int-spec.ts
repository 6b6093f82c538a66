import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { CONSUMERS, rpcSubject, STREAMS } from '#libs/contracts';
import { createLogger } from '#libs/telemetry';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { decodeJson, encodeJson } from './codec.js';
import { connectNats } from './connection.js';
import { provision } from './provision.js';
import { JetStreamServer } from './server.js';

interface LogLine { msg: string; reason?: string; subject?: string }

/**
 * Forged tenant ids against a real broker: a command whose subject, `am-tenant` header and payload
 * `tenantId` disagree is terminated and logged, never handed to its handler; an RPC request whose
 * header and payload disagree is answered with permission_denied.
 */
describe('JetStreamServer refuses messages whose tenant ids disagree', () => {
  let srv: NatsServerHandle;
  let nc: NatsConnection;
  let server: JetStreamServer;
  const handled: Array<{ tenantId?: string; runId?: string; marker: string }> = [];
  const answered: unknown[] = [];
  const logs: LogLine[] = [];

  beforeAll(async () => {
    srv = await startNatsServer();
    nc = await connectNats(srv.url, 'tenant-isolation-test');
    await provision(nc, { replicas: 1, ackWaitMs: 2000 });
    const logger = createLogger('orchestrator', 'info', { write: (s: string) => { logs.push(JSON.parse(s) as LogLine); } });
    server = new JetStreamServer({ nc, service: 'orchestrator', logger, consumers: [{ stream: STREAMS.commands.name, durable: CONSUMERS.orchestrator.durable }], lagIntervalMs: 0 });
    server.useCommandHandlers(new Map([['run.cancel', (data: unknown) => { handled.push(data as { marker: string }); }]]));
    server.addHandler('rpc:tools.list', async (data: unknown) => { answered.push(data); return { tools: [] }; });
    await new Promise<void>((resolve, reject) => server.listen((err?: unknown) => (err ? reject(err) : resolve())));
  });
  afterAll(async () => {
    await server?.close();
    await nc?.close();
    await srv?.stop();
  });

  const js = () => jetstream(nc);
  async function send(subject: string, payload: object, headerTenant: string | undefined): Promise<void> {
    const h = natsHeaders();
    h.set('am-type', 'run.cancel');
    if (headerTenant !== undefined) h.set('am-tenant', headerTenant);
    await js().publish(subject, encodeJson(payload), { headers: h });
  }
  async function drained(): Promise<void> {
    const jsm = await jetstreamManager(nc);
    for (let i = 0; i < 200; i++) {
      const info = await jsm.consumers.info(STREAMS.commands.name, CONSUMERS.orchestrator.durable);
      if (info.num_pending === 0 && info.num_ack_pending === 0) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('commands were not all settled (a terminated command is redelivered?)');
  }

  it.each([
    ['a forged payload tenantId', 'cmd.v1.orch.acme.run_1.cancel', 'acme', { tenantId: 'globex', runId: 'run_1' }, 'the subject tenant and the payload tenantId disagree'],
    ['a forged subject tenant', 'cmd.v1.orch.globex.run_1.cancel', 'acme', { tenantId: 'acme', runId: 'run_1' }, 'the subject tenant and the payload tenantId disagree'],
    ['a forged am-tenant header', 'cmd.v1.orch.acme.run_1.cancel', 'globex', { tenantId: 'acme', runId: 'run_1' }, 'the am-tenant header and the subject tenant disagree'],
    ['a payload without tenantId', 'cmd.v1.orch.acme.run_1.cancel', 'acme', { runId: 'run_1' }, 'the payload carries no tenantId'],
    ['a malformed subject tenant', 'cmd.v1.orch.Not_A_Tenant.run_1.cancel', undefined, { tenantId: 'Not_A_Tenant', runId: 'run_1' }, 'the subject carries no tenant'],
  ])('terminates and logs a command with %s, never handling it', async (_what, subject, header, payload, reason) => {
    const marker = `forged-${subject}-${String(header)}-${JSON.stringify(payload)}`;
    const before = logs.length;
    await send(subject, { ...payload, marker }, header);
    await drained();
    expect(handled.find((h) => h.marker === marker)).toBeUndefined();
    const dropped = logs.slice(before).find((l) => l.msg === 'command dropped');
    expect(dropped).toMatchObject({ subject, reason: `tenant mismatch: ${reason}` });
    // terminated for good: not redelivered after the ack wait (2 s here)
    await new Promise((r) => setTimeout(r, 2_300));
    expect(logs.slice(before).filter((l) => l.msg === 'command dropped')).toHaveLength(1);
  });

  it('handles a command whose subject, header and payload agree (and one without the header)', async () => {
    await send('cmd.v1.orch.acme.run_2.cancel', { tenantId: 'acme', runId: 'run_2', marker: 'agree' }, 'acme');
    await send('cmd.v1.orch.acme.run_3.cancel', { tenantId: 'acme', runId: 'run_3', marker: 'no-header' }, undefined);
    await drained();
    expect(handled.map((h) => h.marker)).toEqual(['agree', 'no-header']);
  });

  it('answers an RPC request whose am-tenant header and payload tenantId disagree with permission_denied', async () => {
    const ask = async (payload: object, headerTenant?: string) => {
      const h = natsHeaders();
      if (headerTenant) h.set('am-tenant', headerTenant);
      const msg = await nc.request(rpcSubject('tools.list'), encodeJson(payload), { timeout: 2000, headers: h });
      return decodeJson<{ ok: boolean; error?: { code: string; reason?: string } }>(msg.data);
    };
    expect(await ask({ tenantId: 'globex' }, 'acme')).toMatchObject({ ok: false, error: { code: 'permission_denied', reason: 'tenant_mismatch' } });
    expect(answered).toEqual([]);
    expect(logs.some((l) => l.msg === 'refused an RPC request whose tenant ids disagree')).toBe(true);
    expect(await ask({ tenantId: 'acme' }, 'acme')).toEqual({ ok: true, value: { tools: [] } });
    expect(await ask({ tenantId: 'acme' })).toEqual({ ok: true, value: { tools: [] } });
    expect(answered).toEqual([{ tenantId: 'acme' }, { tenantId: 'acme' }]);
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { STREAMS } from '#libs/contracts';
import { connectNats, provision } from '#libs/messaging';
import { createLogger } from '#libs/telemetry';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { AuditLog } from './audit.service.js';
import type { AuditRecord } from './chain.js';
import { readAuditChain, verifyTenantAudit } from './reader.js';

const logger = createLogger('gateway', 'silent');
const owner = { tenant: 'acme', roles: ['owner'], subject: 'key:k1' };

describe('the audit trail on a real JetStream stream', () => {
  let srv: NatsServerHandle;
  let nc: NatsConnection;
  let nc2: NatsConnection;
  let gw1: AuditLog;
  let gw2: AuditLog;

  beforeAll(async () => {
    srv = await startNatsServer();
    nc = await connectNats(srv.url, 'audit-test');
    await provision(nc, { replicas: 1, ackWaitMs: 5000 });
    // two gateway instances appending to the same chains
    gw1 = await AuditLog.open(nc, logger);
    nc2 = await connectNats(srv.url, 'audit-test-2');
    gw2 = await AuditLog.open(nc2, logger);
  });
  afterAll(async () => {
    await nc?.close();
    await nc2?.close();
    await srv?.stop();
  });

  it('keeps one unforked chain per tenant while two instances append concurrently', async () => {
    const appends: Array<Promise<AuditRecord>> = [];
    for (let i = 0; i < 30; i++) {
      const log = i % 2 ? gw1 : gw2;
      appends.push(log.append({ tenant: 'acme', action: 'apikeys.issue', actor: owner, target: { type: 'api_key', id: `k${i}` }, details: { roles: ['viewer'] } }));
      if (i % 3 === 0) appends.push(log.append({ tenant: 'globex', action: 'tools.disable', actor: { kind: 'service', id: 'test' }, target: { type: 'tool', id: 'echo' } }));
    }
    const done = await Promise.all(appends);
    const acme = done.filter((r) => r.tenantId === 'acme');
    expect(new Set(acme.map((r) => r.seq)).size).toBe(30);
    const stored = await readAuditChain(nc, 'acme');
    expect(stored.map((r) => r.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(await verifyTenantAudit(nc, 'acme')).toEqual({ ok: true, count: 30, head: { seq: 30, hash: stored[29].hash } });
    expect(await verifyTenantAudit(nc, 'globex')).toMatchObject({ ok: true, count: 10 });
    expect(stored[0]).toMatchObject({ tenantId: 'acme', action: 'apikeys.issue', actor: { kind: 'api_key', id: 'key:k1', roles: ['owner'] } });
  });

  it('pages through a chain after a position', async () => {
    const { records, head } = await gw1.page('acme', 5, 3);
    expect(records.map((r) => r.seq)).toEqual([6, 7, 8]);
    expect(head.seq).toBe(30);
    expect((await gw2.page('acme', 28, 10)).records.map((r) => r.seq)).toEqual([29, 30]);
    expect((await gw2.page('acme', 30, 10)).records).toEqual([]);
    expect((await gw2.page('acme', 0, 2)).records.map((r) => r.seq)).toEqual([1, 2]);
    expect((await gw2.page('nobody', 0, 2)).records).toEqual([]);
  });

  it('is append-only: the stream refuses to delete or purge records', async () => {
    const jsm = await jetstreamManager(nc);
    await expect(jsm.streams.deleteMessage(STREAMS.audit.name, 1)).rejects.toThrow();
    await expect(jsm.streams.purge(STREAMS.audit.name)).rejects.toThrow();
    expect(await verifyTenantAudit(nc, 'acme')).toMatchObject({ ok: true, count: 30 });
  });

  it('finds the first broken link in a stream holding a tampered copy', async () => {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const original = await readAuditChain(nc, 'acme');
    const copies: Array<[string, AuditRecord[], object]> = [
      ['altered', original.map((r) => (r.seq === 4 ? { ...r, details: { roles: ['owner'] } } : r)), { ok: false, seq: 4, problem: 'altered' }],
      ['removed', original.filter((r) => r.seq !== 7), { ok: false, seq: 8, problem: 'broken_link' }],
      ['swapped', original.map((r, i) => (i === 9 ? original[10] : i === 10 ? original[9] : r)), { ok: false, seq: 11, problem: 'broken_link' }],
    ];
    for (const [name, records, verdict] of copies) {
      await jsm.streams.add({ name: `FORGED_${name.toUpperCase()}`, subjects: [`forged.${name}.>`], allow_direct: true });
      for (const r of records) await js.publish(`forged.${name}.acme`, JSON.stringify(r));
      expect(await verifyTenantAudit(nc, 'acme', { stream: `FORGED_${name.toUpperCase()}`, subject: `forged.${name}.acme` })).toMatchObject(verdict);
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, provision } from '#libs/messaging';
import { createKvRepositories, type Repositories } from '#libs/store';
import { createLogger } from '#libs/telemetry';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { AUDIT_SEARCH_CHECKPOINT, AuditProjector } from './audit-projector.js';
import { AuditSearch, type AuditSearchPage } from './audit-search.service.js';
import { AuditController } from './audit.controller.js';
import { AuditLog } from './audit.service.js';

const logger = createLogger('gateway', 'silent');
const owner = { tenant: 'acme', roles: ['owner'], subject: 'key:k1' };

const eventually = async <T>(check: () => Promise<T | null | undefined | false>, what: string, ms = 10_000): Promise<T> => {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe('the audit search projector on a real JetStream stream', () => {
  let srv: NatsServerHandle;
  let nc: NatsConnection;
  let repos: Repositories;
  let log: AuditLog;

  beforeAll(async () => {
    srv = await startNatsServer();
    nc = await connectNats(srv.url, 'audit-projector-test');
    await provision(nc, { replicas: 1, ackWaitMs: 5000 });
    repos = await createKvRepositories(nc, { mongodbUri: undefined });
    log = await AuditLog.open(nc, logger);
    for (let i = 0; i < 12; i++) {
      await log.append({ tenant: 'acme', action: i % 3 ? 'apikeys.issue' : 'tools.disable', actor: owner, target: { type: i % 3 ? 'api_key' : 'tool', id: `x${i}` }, details: { i, note: `n${i}` } });
    }
    await log.append({ tenant: 'globex', action: 'tools.disable', actor: { kind: 'service', id: 'test' } });
  });
  afterAll(async () => {
    await repos?.close();
    await nc?.close();
    await srv?.stop();
  });

  it('projects every chain record into the tenant-scoped read model, searchable by action, newest first', async () => {
    const report = await new AuditProjector(nc, repos, { idleMs: 500 }).catchUp();
    expect(report).toMatchObject({ records: 13, entriesWritten: 13 });
    expect(await repos.checkpoints.get(AUDIT_SEARCH_CHECKPOINT)).toBe(report.throughSeq);
    const disabled = await repos.forTenant('acme').audit.search({ action: 'tools.disable' });
    expect(disabled.items.map((e) => e.resource)).toEqual(['tool:x9', 'tool:x6', 'tool:x3', 'tool:x0']);
    expect(disabled.items[0]).toMatchObject({ actor: 'key:k1', outcome: 'succeeded', detail: { i: '9', note: 'n9', seq: '10' } });
    expect((await repos.forTenant('globex').audit.search()).items).toHaveLength(1);
  });

  it('stores each record once when records are delivered again (checkpoint moved back, a second projector)', async () => {
    await repos.checkpoints.reset(AUDIT_SEARCH_CHECKPOINT);
    const again = await Promise.all([new AuditProjector(nc, repos, { idleMs: 500 }).catchUp(), new AuditProjector(nc, repos, { idleMs: 500, batchSize: 3 }).catchUp()]);
    expect(again.map((r) => r.records)).toEqual([13, 13]);
    expect(again.map((r) => r.entriesWritten)).toEqual([0, 0]);
    expect((await repos.forTenant('acme').audit.search({ limit: 1000 })).items).toHaveLength(12);
  });

  it('resumes after its checkpoint, and follows the stream live until stopped', async () => {
    const before = await repos.checkpoints.get(AUDIT_SEARCH_CHECKPOINT);
    await log.append({ tenant: 'acme', action: 'budgets.put', actor: owner, target: { type: 'budget', id: 'acme' } });
    const resumed = await new AuditProjector(nc, repos, { idleMs: 500 }).catchUp();
    expect(resumed).toEqual({ records: 1, entriesWritten: 1, throughSeq: before + 1 });

    const live = new AuditProjector(nc, repos);
    live.start();
    try {
      await log.append({ tenant: 'acme', action: 'budgets.put', actor: owner, target: { type: 'budget', id: 'acme' }, details: { limitUsd: 5 } });
      const found = await eventually(async () => {
        const p = await repos.forTenant('acme').audit.search({ action: 'budgets.put' });
        return p.items.length === 2 ? p : null;
      }, 'the live projector to index the record');
      expect(found.items[0].detail).toEqual({ limitUsd: '5', seq: '14' });
    } finally {
      await live.stop();
    }
  });

  it('serves GET /audit filters from the read model: action, time range, cursor pages, and the chain read without filters', async () => {
    const search = new AuditSearch(nc, repos, logger);
    const ctl = new AuditController(log, search);
    const all = await repos.forTenant('acme').audit.search({ limit: 1000 });
    const mid = all.items[5].at;

    const page = async (q: Record<string, string>): Promise<AuditSearchPage> => {
      const p = await ctl.list('acme', q);
      if (!('entries' in p)) throw new Error('expected a filtered page');
      return p;
    };
    const pages = [await page({ action: 'apikeys.issue', limit: '3' })];
    expect(pages[0]).toMatchObject({ tenant: 'acme', nextCursor: expect.any(String) });
    for (let c = pages[0].nextCursor; c; c = pages[pages.length - 1].nextCursor) pages.push(await page({ action: 'apikeys.issue', limit: '3', cursor: c }));
    const issued = pages.flatMap((p) => p.entries);
    expect(issued).toHaveLength(8);
    // newest first (records appended within one millisecond come in id order)
    expect(issued.map((e) => e.seq).sort((a, b) => b - a)).toEqual([12, 11, 9, 8, 6, 5, 3, 2]);
    expect(issued.every((e, i) => i === 0 || issued[i - 1].at >= e.at)).toBe(true);
    expect(issued.find((e) => e.seq === 12)).toEqual({ id: expect.any(String), seq: 12, at: expect.any(String), action: 'apikeys.issue', actor: 'key:k1', outcome: 'succeeded', resource: 'api_key:x11', detail: { i: '11', note: 'n11' } });

    const since = await page({ from: mid });
    const until = await page({ to: mid });
    expect(since.entries.every((e) => e.at >= mid) && until.entries.every((e) => e.at < mid)).toBe(true);
    expect(since.entries.length + until.entries.length).toBe(14);

    const chain = await ctl.list('acme', { after: '2', limit: '2' });
    expect(chain).toMatchObject({ tenant: 'acme', next: 4, head: { seq: 14 } });
    await expect(ctl.list('acme', { action: 'apikeys.issue', after: '2' })).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(ctl.list('acme', { from: 'yesterday' })).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(ctl.list('acme', { cursor: 'garbage!' })).rejects.toMatchObject({ code: 'invalid_argument' });
  });
});

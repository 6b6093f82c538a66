import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import type { AnyNewJournalEvent } from '#libs/contracts';
import { connectNats, provision } from '#libs/messaging';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { Journal, StaleWriterError } from './journal.js';

const key = { tenantId: 'acme', runId: 'run_01J00000000000000000000001' };
const ev = (type: 'run.cancel_requested', step: number): AnyNewJournalEvent => ({ ...key, type, at: '2026-01-01T00:00:00Z', step, data: { reason: `s${step}` } });
const created = (k = key): AnyNewJournalEvent => ({
  ...k, type: 'run.created', at: '2026-01-01T00:00:00Z', step: 0,
  data: { agent: { name: 'a', version: '1', planner: 'graph', tools: [], limits: {}, steps: [] }, input: { x: 1 } },
});

describe('the journal', () => {
  let srv: NatsServerHandle;
  let nc: NatsConnection;
  let journal: Journal;
  beforeAll(async () => {
    srv = await startNatsServer();
    nc = await connectNats(srv.url, 'journal-test');
    await provision(nc, { replicas: 1, ackWaitMs: 30_000 });
    journal = await Journal.open(nc);
  });
  afterAll(async () => { await nc.close(); await srv.stop(); });

  it('appends in order and rejects a writer whose view of the run is stale', async () => {
    const s1 = await journal.append(created(), 0, 1);
    const s2 = await journal.append(ev('run.cancel_requested', 1), s1, 2);
    expect(s2).toBeGreaterThan(s1);
    await expect(journal.append(ev('run.cancel_requested', 2), s1, 3)).rejects.toBeInstanceOf(StaleWriterError);
    await expect(journal.append(created(), 0, 1)).resolves.toBe(s1); // a retried publish is deduped, not forked
    // a writer that believes the run is new (expected sequence 0) is refused once it has events,
    // also when its message id is new (a start delivered again after the dedupe window)
    await expect(journal.append(created(), 0, 99)).rejects.toBeInstanceOf(StaleWriterError);
    const events = await journal.read(key);
    expect(events.map((e) => e.seq)).toEqual([s1, s2]);
    expect(events[0]).toMatchObject({ type: 'run.created', tenantId: 'acme', data: { input: { x: 1 } } });
    expect(await journal.read(key, s1)).toHaveLength(1);
  });

  it('reads nothing for a run with no events', async () => {
    expect(await journal.read({ tenantId: 'acme', runId: 'run_01J00000000000000000000009' })).toEqual([]);
    expect(await journal.lastSeq({ tenantId: 'other', runId: 'run_01J00000000000000000000001' })).toBe(0);
  });

  it('keeps tenants apart: the same run id under another tenant is another journal', async () => {
    const other = { tenantId: 'globex', runId: key.runId };
    await journal.append(created(other), 0, 1);
    expect((await journal.read(other)).every((e) => e.tenantId === 'globex')).toBe(true);
    expect((await journal.read(key)).every((e) => e.tenantId === 'acme')).toBe(true);
  });

  it('follows new events as they are appended and ends after the terminal one', async () => {
    const k = { tenantId: 'acme', runId: 'run_01J00000000000000000000002' };
    const s1 = await journal.append(created(k), 0, 1);
    const seen: string[] = [];
    const follow = (async () => { for await (const e of journal.iterate(k, 0)) seen.push(e.type); })();
    await new Promise((r) => setTimeout(r, 50));
    await journal.append({ ...k, type: 'run.cancelled', at: '2026-01-01T00:00:01Z', step: 0, data: { cost: { usd: 0, inputTokens: 0, outputTokens: 0 } } }, s1, 2);
    await follow;
    expect(seen).toEqual(['run.created', 'run.cancelled']);
  });

  it('loads state from a snapshot plus the tail', async () => {
    const k = { tenantId: 'acme', runId: 'run_01J00000000000000000000003' };
    const s1 = await journal.append(created(k), 0, 1);
    const st = await journal.load(k);
    expect(st.lastSeq).toBe(s1);
    await journal.saveSnapshot(st);
    await journal.append({ ...k, type: 'run.cancelled', at: '2026-01-01T00:00:01Z', step: 0, data: { cost: { usd: 0, inputTokens: 0, outputTokens: 0 } } }, s1, 2);
    const after = await journal.load(k);
    expect(after.status).toBe('cancelled');
    expect(after.eventCount).toBe(2);
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { connectNats } from './connection.js';
import { JetStreamPublisher, JetStreamPublishError, WRONG_LAST_SEQUENCE } from './js-publisher.js';

const data = new TextEncoder().encode('{}');

describe('JetStreamPublisher', () => {
  let srv: NatsServerHandle;
  let nc: NatsConnection;
  let pub: JetStreamPublisher;
  beforeAll(async () => {
    srv = await startNatsServer();
    nc = await connectNats(srv.url, 'pub-test');
    await (await jetstreamManager(nc)).streams.add({ name: 'P', subjects: ['p.>'], duplicate_window: 60_000_000_000 });
    pub = new JetStreamPublisher(nc, 1500);
  });
  afterAll(async () => { pub.close(); await nc.close(); await srv.stop(); });

  it('resolves each publish with its own stream sequence, many in flight at once', async () => {
    const acks = await Promise.all(Array.from({ length: 500 }, (_, i) => pub.publish(`p.${i % 7}`, data)));
    const seqs = acks.map((a) => a.seq);
    expect(new Set(seqs).size).toBe(500);
    expect(acks.every((a) => a.stream === 'P' && !a.duplicate)).toBe(true);
  });

  it('reports a duplicate message id as a duplicate of the first', async () => {
    const h = () => { const x = headers(); x.set('Nats-Msg-Id', 'once'); return x; };
    const a = await pub.publish('p.dup', data, h());
    const b = await pub.publish('p.dup', data, h());
    expect(b).toEqual({ stream: 'P', seq: a.seq, duplicate: true });
  });

  it('rejects with JetStream\'s error code when the expected last subject sequence is wrong', async () => {
    const first = await pub.publish('p.fenced', data);
    const h = headers();
    h.set('Nats-Expected-Last-Subject-Sequence', String(first.seq - 1));
    const err = await pub.publish('p.fenced', data, h).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JetStreamPublishError);
    expect((err as JetStreamPublishError).apiCode).toBe(WRONG_LAST_SEQUENCE);
  });

  it('rejects at once when no stream takes the subject', async () => {
    const err = await pub.publish('nowhere.x', data).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'JetStreamPublishError', status: 503 });
  });

  it('times out a publish the broker never acknowledges', async () => {
    await srv.kill();
    const err = await pub.publish('p.lost', data).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'JetStreamPublishError', status: 408 });
    await srv.restart();
  });
});

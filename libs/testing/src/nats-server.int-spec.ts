import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startNatsServer, type NatsServerHandle } from './nats-server.js';

describe('the nats-server test launcher', () => {
  let srv: NatsServerHandle;
  beforeAll(async () => { srv = await startNatsServer(); });
  afterAll(async () => { await srv.stop(); });

  it('keeps JetStream messages across a broker restart on the same store', async () => {
    let nc = await connect({ servers: srv.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'T', subjects: ['t.>'] });
    await jetstream(nc).publish('t.a', 'one');
    await nc.close();
    await srv.restart();
    nc = await connect({ servers: srv.url });
    const msg = await (await jetstreamManager(nc)).streams.getMessage('T', { last_by_subj: 't.a' });
    expect(msg?.string()).toBe('one');
    await nc.close();
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '#libs/messaging';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { KvDocuments, keyToken } from './kv-documents.js';

describe('KvDocuments', () => {
  let srv: NatsServerHandle;
  let nc: NatsConnection;
  let docs: KvDocuments<{ v: number }>;
  beforeAll(async () => {
    srv = await startNatsServer();
    nc = await connectNats(srv.url, 'store-test');
    docs = new KvDocuments(await new Kvm(nc).create('test_docs'));
  });
  afterAll(async () => { await nc.close(); await srv.stop(); });

  it('keeps documents per tenant and lists only that tenant', async () => {
    await docs.put('acme', ['tools', 'echo', '1.0.0'], { v: 1 });
    await docs.put('acme', ['tools', 'echo', '2.0.0'], { v: 2 });
    await docs.put('globex', ['tools', 'echo', '1.0.0'], { v: 9 });
    expect(await docs.get('acme', 'tools', 'echo', '1.0.0')).toEqual({ v: 1 });
    expect((await docs.list('acme', 'tools', 'echo')).map((d) => d.v).sort()).toEqual([1, 2]);
    expect(await docs.list('globex', 'tools')).toEqual([{ v: 9 }]);
    expect(await docs.get('initech', 'tools', 'echo', '1.0.0')).toBeNull();
  });

  it('creates only once and updates only at the expected revision', async () => {
    expect(await docs.create('acme', ['k'], { v: 1 })).toBe(true);
    expect(await docs.create('acme', ['k'], { v: 2 })).toBe(false);
    const cur = await docs.getWithRevision('acme', 'k');
    expect(await docs.update('acme', ['k'], { v: 3 }, cur!.revision)).toBe(true);
    expect(await docs.update('acme', ['k'], { v: 4 }, cur!.revision)).toBe(false);
    expect(await docs.get('acme', 'k')).toEqual({ v: 3 });
    await docs.delete('acme', 'k');
    expect(await docs.get('acme', 'k')).toBeNull();
    expect(await docs.create('acme', ['k'], { v: 5 })).toBe(true);
  });

  it('encodes key tokens that would break subjects', () => {
    expect(keyToken('echo')).toBe('echo');
    expect(keyToken('1.2.0')).toMatch(/^=/);
  });
});

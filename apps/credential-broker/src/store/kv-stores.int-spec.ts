import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, DELEGATION_REPLAY_TTL_MS, MAX_DELEGATION_TTL_SECONDS } from '#libs/contracts';
import { connectNats, openBucket, provision } from '#libs/messaging';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { EnvelopeEncryption, MasterKey, SecretValue, type WrappedDataKey } from '../crypto/index.js';
import { KvKeyring } from './kv-keyring.js';
import { KvReplayCache } from './kv-replay-cache.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function wrapped(tenantId: string, dataKeyId: string, masterKeyId = 'mk-a'): WrappedDataKey {
  return {
    v: 1, tenantId, dataKeyId, masterKeyId, nonce: 'AAAAAAAAAAAAAAAA', wrappedKey: 'A'.repeat(43), tag: 'A'.repeat(22), createdAt: new Date(0).toISOString(),
  };
}

describe('JetStream KV keyring and replay cache (real nats-server)', () => {
  let srv: NatsServerHandle;
  let nc: NatsConnection;
  let nc2: NatsConnection;
  let keyringKv: KV;
  let keyringKv2: KV;
  let seq = 0;
  const tenant = () => `kv-t${++seq}`;

  beforeAll(async () => {
    srv = await startNatsServer();
    nc = await connectNats(srv.url, 'kv-stores-test-1');
    nc2 = await connectNats(srv.url, 'kv-stores-test-2');
    await provision(nc, { replicas: 1, ackWaitMs: 5000 });
    keyringKv = await openBucket(nc, BUCKETS.keyring);
    keyringKv2 = await openBucket(nc2, BUCKETS.keyring);
  });
  afterAll(async () => {
    await nc?.close();
    await nc2?.close();
    await srv?.stop();
  });

  describe('KvKeyring', () => {
    it('creates an entry only if the tenant has none, and never overwrites one', async () => {
      const ring = new KvKeyring(keyringKv);
      const t = tenant();
      expect(await ring.get(t)).toBeUndefined();
      expect(await ring.create(t, wrapped(t, 'dk_first'))).toBe(true);
      expect(await ring.create(t, wrapped(t, 'dk_second'))).toBe(false);
      expect((await ring.get(t))?.value.dataKeyId).toBe('dk_first');
    });

    it('lets exactly one of many concurrent creators (two connections) win', async () => {
      const t = tenant();
      const rings = [new KvKeyring(keyringKv), new KvKeyring(keyringKv2)];
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => rings[i % 2].create(t, wrapped(t, `dk_${i}`))));
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect((await rings[1].get(t))?.value.dataKeyId).toBe(`dk_${winner}`);
    });

    it('updates by compare-and-set on the revision: a stale revision changes nothing', async () => {
      const ring = new KvKeyring(keyringKv);
      const t = tenant();
      await ring.create(t, wrapped(t, 'dk_1'));
      const first = (await ring.get(t))!;
      expect(await ring.update(t, wrapped(t, 'dk_1', 'mk-b'), first.revision)).toBe(true);
      const second = (await ring.get(t))!;
      expect(second.revision).toBeGreaterThan(first.revision);
      expect(second.value.masterKeyId).toBe('mk-b');
      expect(await ring.update(t, wrapped(t, 'dk_1', 'mk-c'), first.revision)).toBe(false);
      expect((await ring.get(t))!.value.masterKeyId).toBe('mk-b');
      expect(await ring.update(tenant(), wrapped('x', 'dk_1'), 1)).toBe(false); // no entry at all
    });

    it('lists every tenant that has an entry', async () => {
      const ring = new KvKeyring(keyringKv);
      const mine = [tenant(), tenant(), tenant()];
      for (const t of mine) await ring.create(t, wrapped(t, 'dk'));
      const all: string[] = [];
      for await (const t of ring.tenants()) all.push(t);
      expect(all).toEqual(expect.arrayContaining(mine));
    });

    it('backs envelope encryption shared by two replicas: one data key per tenant, rotation without loss', async () => {
      const k1 = MasterKey.generate('mk-one');
      const k2 = MasterKey.generate('mk-two');
      const a = new EnvelopeEncryption({ masterKeys: [k1], activeMasterKeyId: 'mk-one', keyring: new KvKeyring(keyringKv) });
      const b = new EnvelopeEncryption({ masterKeys: [k1], activeMasterKeyId: 'mk-one', keyring: new KvKeyring(keyringKv2) });
      const t = tenant();
      // both replicas create the tenant's first data key at once
      const [sa, sb] = await Promise.all([
        a.encrypt(t, 'alpha', SecretValue.from('secret-alpha')),
        b.encrypt(t, 'beta', SecretValue.from('secret-beta')),
      ]);
      expect(sa.dataKeyId).toBe(sb.dataKeyId);
      expect((await b.decrypt(t, 'alpha', sa)).reveal()).toBe('secret-alpha');
      expect((await a.decrypt(t, 'beta', sb)).reveal()).toBe('secret-beta');

      // rotation on a third instance that knows both keys, while the others keep decrypting
      const rotator = new EnvelopeEncryption({ masterKeys: [k1, k2], activeMasterKeyId: 'mk-two', keyring: new KvKeyring(keyringKv) });
      let stop = false;
      let reads = 0;
      const reader = (async () => {
        while (!stop) {
          expect((await a.decrypt(t, 'beta', sb)).reveal()).toBe('secret-beta');
          reads++;
          await sleep(1);
        }
      })();
      const report = await rotator.rewrap('mk-one');
      stop = true;
      await reader;
      expect(report.failed).toEqual([]);
      expect(report.rewrapped).toBeGreaterThanOrEqual(1);
      expect(reads).toBeGreaterThan(0);
      expect((await new KvKeyring(keyringKv).get(t))!.value.masterKeyId).toBe('mk-two');
      // a fresh replica that only knows the new key reads everything
      const fresh = new EnvelopeEncryption({ masterKeys: [k2], activeMasterKeyId: 'mk-two', keyring: new KvKeyring(keyringKv2) });
      expect((await fresh.decrypt(t, 'alpha', sa)).reveal()).toBe('secret-alpha');
      // the stored entry holds no plaintext key material next to its id
      const raw = new TextDecoder().decode((await keyringKv.get(t))!.value);
      expect(JSON.parse(raw)).toMatchObject({ tenantId: t, masterKeyId: 'mk-two', dataKeyId: sa.dataKeyId });
    });
  });

  describe('KvReplayCache', () => {
    it('is provisioned to remember ids longer than any delegation can live', async () => {
      const cache = new KvReplayCache(await openBucket(nc, BUCKETS.delegationReplay));
      expect(await cache.retentionMs()).toBe(DELEGATION_REPLAY_TTL_MS);
      expect(DELEGATION_REPLAY_TTL_MS).toBeGreaterThan(MAX_DELEGATION_TTL_SECONDS * 1000 * 2);
    });

    it('accepts an id once and refuses it afterwards', async () => {
      const cache = new KvReplayCache(await openBucket(nc, BUCKETS.delegationReplay));
      const jti = crypto.randomUUID();
      expect(await cache.consume(jti, Date.now() + 60_000)).toBe(true);
      expect(await cache.consume(jti, Date.now() + 60_000)).toBe(false);
    });

    it('lets exactly one of many concurrent redemptions over two connections through', async () => {
      const caches = [new KvReplayCache(await openBucket(nc, BUCKETS.delegationReplay)), new KvReplayCache(await openBucket(nc2, BUCKETS.delegationReplay))];
      const jti = crypto.randomUUID();
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => caches[i % 2].consume(jti, Date.now() + 60_000)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('forgets an id only when the bucket max_age has passed', async () => {
      const kv = await new Kvm(nc).create('test_replay_short', { history: 1, ttl: 1000 });
      const cache = new KvReplayCache(kv);
      expect(await cache.retentionMs()).toBe(1000);
      const jti = crypto.randomUUID();
      expect(await cache.consume(jti, Date.now() + 500)).toBe(true);
      expect(await cache.consume(jti, Date.now() + 500)).toBe(false);
      await sleep(1600);
      expect(await cache.consume(jti, Date.now() + 500)).toBe(true);
    });

    it('refuses malformed ids', async () => {
      const cache = new KvReplayCache(await openBucket(nc, BUCKETS.delegationReplay));
      await expect(cache.consume('a.b>', Date.now())).rejects.toMatchObject({ code: 'invalid_token' });
    });
  });
});

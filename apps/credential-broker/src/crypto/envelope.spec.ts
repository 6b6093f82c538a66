import { describe, expect, it } from '@jest/globals';
import { createSecretKey, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { encodeAad, open, seal } from './aead.js';
import { EnvelopeEncryption, type EncryptedSecret } from './envelope.js';
import { CredentialCryptoError } from './errors.js';
import { InMemoryKeyring, type Keyring, type KeyringEntry, type WrappedDataKey } from './keyring.js';
import { MasterKey } from './master-key.js';
import { SecretValue } from './secret-value.js';

const CANARY = 'canary-sk-live-9d8e7f6a5b4c';

async function failure(promise: Promise<unknown>): Promise<CredentialCryptoError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(CredentialCryptoError);
    return error as CredentialCryptoError;
  }
  throw new Error('expected a CredentialCryptoError, but the call succeeded');
}

function syncFailure(fn: () => unknown): CredentialCryptoError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CredentialCryptoError);
    return error as CredentialCryptoError;
  }
  throw new Error('expected a CredentialCryptoError, but the call succeeded');
}

function flipBit(base64url: string, byte = 0): string {
  const bytes = Buffer.from(base64url, 'base64url');
  bytes[byte] ^= 0x01;
  return bytes.toString('base64url');
}

function setup(masterKeys = [MasterKey.generate('mk-1')], keyring: Keyring = new InMemoryKeyring()) {
  const envelope = new EnvelopeEncryption({ masterKeys, activeMasterKeyId: masterKeys[0].id, keyring });
  return { envelope, keyring, masterKeys };
}

describe('EnvelopeEncryption', () => {
  it('round-trips a secret for a tenant and credential name', async () => {
    const { envelope } = setup();
    for (const value of [CANARY, '', 'ünïcødé 🔑', 'x'.repeat(10_000)]) {
      const encrypted = await envelope.encrypt('acme', 'stripe', SecretValue.from(value));
      const decrypted = await envelope.decrypt('acme', 'stripe', encrypted);
      expect(decrypted.reveal()).toBe(value);
    }
  });

  it('uses a fresh nonce each time, so equal secrets give different ciphertexts', async () => {
    const { envelope } = setup();
    const a = await envelope.encrypt('acme', 'stripe', SecretValue.from(CANARY));
    const b = await envelope.encrypt('acme', 'stripe', SecretValue.from(CANARY));
    expect(a.nonce).not.toBe(b.nonce);
    expect(a.ciphertext).not.toBe(b.ciphertext);
    expect(Buffer.from(a.nonce, 'base64url')).toHaveLength(12);
  });

  it('gives each tenant its own data key, wrapped by the active master key', async () => {
    const { envelope, keyring } = setup();
    await envelope.encrypt('acme', 'stripe', SecretValue.from(CANARY));
    await envelope.encrypt('globex', 'stripe', SecretValue.from(CANARY));
    const acme = (await keyring.get('acme'))!.value;
    const globex = (await keyring.get('globex'))!.value;
    expect(acme.masterKeyId).toBe('mk-1');
    expect(acme.dataKeyId).not.toBe(globex.dataKeyId);
    expect(acme.wrappedKey).not.toBe(globex.wrappedKey);
  });

  it('detects a flipped bit in the ciphertext, the tag or the nonce', async () => {
    const { envelope } = setup();
    const encrypted = await envelope.encrypt('acme', 'stripe', SecretValue.from(CANARY));
    for (const field of ['ciphertext', 'tag', 'nonce'] as const) {
      const tampered: EncryptedSecret = { ...encrypted, [field]: flipBit(encrypted[field], 3) };
      const error = await failure(envelope.decrypt('acme', 'stripe', tampered));
      expect(error.code).toBe('decrypt_failed');
      expect(error.name).toBe('CredentialCryptoError');
      expect(error.cause).toBeDefined();
    }
  });

  it('refuses a ciphertext moved to another credential name of the same tenant (AAD)', async () => {
    const { envelope } = setup();
    const encrypted = await envelope.encrypt('acme', 'stripe', SecretValue.from(CANARY));
    const error = await failure(envelope.decrypt('acme', 'github', encrypted));
    expect(error.code).toBe('decrypt_failed');
  });

  it('refuses a ciphertext moved to another tenant', async () => {
    const { envelope } = setup();
    const encrypted = await envelope.encrypt('acme', 'stripe', SecretValue.from(CANARY));
    await envelope.ensureDataKey('globex');
    const error = await failure(envelope.decrypt('globex', 'stripe', encrypted));
    expect(error.code).toBe('decrypt_failed');
  });

  it('binds tenant and name in the AAD even when the key is the same', () => {
    const key = createSecretKey(randomBytes(32));
    const sealed = seal(key, Buffer.from(CANARY), encodeAad(['agentmesh/secret/v1', 'acme', 'stripe']));
    expect(open(key, sealed, encodeAad(['agentmesh/secret/v1', 'acme', 'stripe'])).toString()).toBe(CANARY);
    expect(() => open(key, sealed, encodeAad(['agentmesh/secret/v1', 'globex', 'stripe']))).toThrow();
    expect(() => open(key, sealed, encodeAad(['agentmesh/secret/v1', 'acme', 'github']))).toThrow();
    // Length prefixes keep ("acm", "estripe") from colliding with ("acme", "stripe").
    expect(() => open(key, sealed, encodeAad(['agentmesh/secret/v1', 'acm', 'estripe']))).toThrow();
  });

  it('rejects malformed encrypted secrets before trying to decrypt', async () => {
    const { envelope } = setup();
    const encrypted = await envelope.encrypt('acme', 'stripe', SecretValue.from(CANARY));
    const malformed: unknown[] = [
      null,
      'v1.abc',
      { ...encrypted, v: 2 },
      { ...encrypted, alg: 'A128GCM' },
      { ...encrypted, nonce: encrypted.nonce.slice(0, 8) },
      { ...encrypted, tag: '!!not base64url!!' },
    ];
    for (const candidate of malformed) {
      const error = await failure(envelope.decrypt('acme', 'stripe', candidate as EncryptedSecret));
      expect(error.code).toBe('invalid_ciphertext');
    }
  });

  it('reports a tenant with no data key instead of creating one on decrypt', async () => {
    const { envelope, keyring } = setup();
    const encrypted = await envelope.encrypt('acme', 'stripe', SecretValue.from(CANARY));
    const error = await failure(envelope.decrypt('initech', 'stripe', encrypted));
    expect(error.code).toBe('data_key_missing');
    expect(await keyring.get('initech')).toBeUndefined();
  });

  it('refuses a keyring entry copied from another tenant', async () => {
    const keyring = new InMemoryKeyring();
    const { envelope, masterKeys } = setup(undefined, keyring);
    await envelope.ensureDataKey('acme');
    await envelope.ensureDataKey('globex');
    const acme = (await keyring.get('acme'))!.value;
    const globex = (await keyring.get('globex'))!.value;
    keyring.replaceUnchecked('globex', { ...acme, tenantId: 'globex', dataKeyId: globex.dataKeyId });
    const fresh = new EnvelopeEncryption({ masterKeys, activeMasterKeyId: 'mk-1', keyring });
    expect((await failure(fresh.ensureDataKey('globex'))).code).toBe('unwrap_failed');
  });

  it('refuses to unwrap a data key whose master key is not configured', async () => {
    const keyring = new InMemoryKeyring();
    const { envelope } = setup([MasterKey.generate('mk-1')], keyring);
    const encrypted = await envelope.encrypt('acme', 'stripe', SecretValue.from(CANARY));
    const other = setup([MasterKey.generate('mk-other')], keyring).envelope;
    const error = await failure(other.decrypt('acme', 'stripe', encrypted));
    expect(error.code).toBe('unknown_master_key');
    expect(error.message).toContain('mk-1');
  });

  it('creates exactly one data key when replicas race on a new tenant', async () => {
    const keyring = new InMemoryKeyring();
    const masterKeys = [MasterKey.generate('mk-1')];
    const replicas = [1, 2, 3].map(() => new EnvelopeEncryption({ masterKeys, activeMasterKeyId: 'mk-1', keyring }));
    const encrypted = await Promise.all(
      replicas.flatMap((replica, i) => [
        replica.encrypt('acme', `cred-${i}-a`, SecretValue.from(`value-${i}-a`)),
        replica.encrypt('acme', `cred-${i}-b`, SecretValue.from(`value-${i}-b`)),
      ]),
    );
    expect(new Set(encrypted.map((e) => e.dataKeyId)).size).toBe(1);
    for (const replica of replicas) {
      for (const [j, e] of encrypted.entries()) {
        const i = Math.floor(j / 2);
        const suffix = j % 2 === 0 ? 'a' : 'b';
        expect((await replica.decrypt('acme', `cred-${i}-${suffix}`, e)).reveal()).toBe(`value-${i}-${suffix}`);
      }
    }
  });

  describe('master key rotation', () => {
    it('re-wraps data keys without touching secrets, and decrypts after the old key is retired', async () => {
      const keyring = new InMemoryKeyring();
      const mk1 = MasterKey.generate('mk-1');
      const mk2 = MasterKey.generate('mk-2');
      const before = new EnvelopeEncryption({ masterKeys: [mk1], activeMasterKeyId: 'mk-1', keyring });

      const stored: Array<{ tenant: string; name: string; value: string; encrypted: EncryptedSecret }> = [];
      for (const tenant of ['acme', 'globex', 'initech']) {
        for (const name of ['stripe', 'github', 'slack']) {
          const value = `${CANARY}-${tenant}-${name}`;
          stored.push({ tenant, name, value, encrypted: await before.encrypt(tenant, name, SecretValue.from(value)) });
        }
      }
      const snapshot = JSON.stringify(stored.map((s) => s.encrypted));

      // Deploy both keys with the new one active: old data keys still unwrap, new tenants get mk-2.
      const during = new EnvelopeEncryption({ masterKeys: [mk1, mk2], activeMasterKeyId: 'mk-2', keyring });
      for (const s of stored) expect((await during.decrypt(s.tenant, s.name, s.encrypted)).reveal()).toBe(s.value);
      const late = await during.encrypt('hooli', 'stripe', SecretValue.from(`${CANARY}-hooli`));
      expect((await keyring.get('hooli'))!.value.masterKeyId).toBe('mk-2');

      const report = await during.rewrap('mk-1', 'mk-2');
      expect(report).toEqual({ rewrapped: 3, unchanged: 1, failed: [] });
      for await (const tenant of keyring.tenants()) {
        const entry = (await keyring.get(tenant))!.value;
        expect(entry.masterKeyId).toBe('mk-2');
        expect(entry.rewrappedAt === undefined).toBe(tenant === 'hooli');
      }
      expect(JSON.stringify(stored.map((s) => s.encrypted))).toBe(snapshot);

      // Retire mk-1: a process configured with mk-2 only reads everything.
      const after = new EnvelopeEncryption({ masterKeys: [mk2], activeMasterKeyId: 'mk-2', keyring });
      for (const s of stored) expect((await after.decrypt(s.tenant, s.name, s.encrypted)).reveal()).toBe(s.value);
      expect((await after.decrypt('hooli', 'stripe', late)).reveal()).toBe(`${CANARY}-hooli`);

      // And a process holding only the retired key no longer can.
      const stale = new EnvelopeEncryption({ masterKeys: [mk1], activeMasterKeyId: 'mk-1', keyring });
      expect((await failure(stale.decrypt('acme', 'stripe', stored[0].encrypted))).code).toBe('unknown_master_key');

      // Running it again is a no-op.
      expect(await during.rewrap('mk-1', 'mk-2')).toEqual({ rewrapped: 0, unchanged: 4, failed: [] });
    });

    it('retries a re-wrap that races another writer', async () => {
      const inner = new InMemoryKeyring();
      let conflicts = 1;
      const racy: Keyring = {
        get: (t) => inner.get(t),
        create: (t, v) => inner.create(t, v),
        tenants: () => inner.tenants(),
        async update(t: string, v: WrappedDataKey, rev: number): Promise<boolean> {
          if (conflicts-- > 0) {
            const current = (await inner.get(t)) as KeyringEntry;
            await inner.update(t, { ...current.value }, current.revision);
          }
          return inner.update(t, v, rev);
        },
      };
      const mk1 = MasterKey.generate('mk-1');
      const mk2 = MasterKey.generate('mk-2');
      const envelope = new EnvelopeEncryption({ masterKeys: [mk1, mk2], activeMasterKeyId: 'mk-1', keyring: racy });
      const encrypted = await envelope.encrypt('acme', 'stripe', SecretValue.from(CANARY));
      expect(await envelope.rewrap('mk-1', 'mk-2')).toEqual({ rewrapped: 1, unchanged: 0, failed: [] });
      const after = new EnvelopeEncryption({ masterKeys: [mk2], activeMasterKeyId: 'mk-2', keyring: inner });
      expect((await after.decrypt('acme', 'stripe', encrypted)).reveal()).toBe(CANARY);
    });

    it('reports entries it cannot re-wrap and carries on with the rest', async () => {
      const keyring = new InMemoryKeyring();
      const mk1 = MasterKey.generate('mk-1');
      const mk2 = MasterKey.generate('mk-2');
      const envelope = new EnvelopeEncryption({ masterKeys: [mk1, mk2], activeMasterKeyId: 'mk-1', keyring });
      await envelope.ensureDataKey('acme');
      await envelope.ensureDataKey('globex');
      const globex = (await keyring.get('globex'))!.value;
      keyring.replaceUnchecked('globex', { ...globex, wrappedKey: flipBit(globex.wrappedKey) });
      const report = await envelope.rewrap('mk-1', 'mk-2');
      expect(report).toEqual({ rewrapped: 1, unchanged: 0, failed: [{ tenantId: 'globex', code: 'unwrap_failed' }] });
    });

    it('refuses to re-wrap with an unknown or identical master key', async () => {
      const { envelope } = setup();
      expect((await failure(envelope.rewrap('mk-1', 'mk-9'))).code).toBe('unknown_master_key');
      expect((await failure(envelope.rewrap('mk-1', 'mk-1'))).code).toBe('invalid_argument');
    });
  });

  describe('configuration', () => {
    it('validates master keys and the active key id', () => {
      expect(syncFailure(() => MasterKey.fromBytes('mk-1', randomBytes(16))).code).toBe('invalid_master_key');
      expect(syncFailure(() => MasterKey.fromBytes('bad id', randomBytes(32))).code).toBe('invalid_master_key');
      expect(syncFailure(() => MasterKey.fromBase64('mk-1', 'not base64!')).code).toBe('invalid_master_key');
      expect(MasterKey.fromBase64('mk-1', randomBytes(32).toString('base64')).id).toBe('mk-1');
      const keyring = new InMemoryKeyring();
      const mk = MasterKey.generate('mk-1');
      const duplicate = () => new EnvelopeEncryption({ masterKeys: [mk, mk], activeMasterKeyId: 'mk-1', keyring });
      expect(syncFailure(duplicate).code).toBe('invalid_master_key');
      const missing = () => new EnvelopeEncryption({ masterKeys: [mk], activeMasterKeyId: 'mk-2', keyring });
      expect(syncFailure(missing).code).toBe('unknown_master_key');
    });

    it('rejects empty tenant ids and names and values that are not SecretValues', async () => {
      const { envelope } = setup();
      expect((await failure(envelope.encrypt('', 'stripe', SecretValue.from(CANARY)))).code).toBe('invalid_argument');
      expect((await failure(envelope.encrypt('acme', '', SecretValue.from(CANARY)))).code).toBe('invalid_argument');
      const raw = CANARY as unknown as SecretValue;
      const error = await failure(envelope.encrypt('acme', 'stripe', raw));
      expect(error.code).toBe('invalid_argument');
      expect(error.message).not.toContain(CANARY);
    });
  });

  describe('canary secret', () => {
    it('never appears in stored ciphertext, keyring entries, key renderings or error messages', async () => {
      const keyBytes = randomBytes(32);
      const mk = MasterKey.fromBytes('mk-1', keyBytes);
      const keyring = new InMemoryKeyring();
      const envelope = new EnvelopeEncryption({ masterKeys: [mk], activeMasterKeyId: 'mk-1', keyring });
      const secret = SecretValue.from(CANARY);
      const encrypted = await envelope.encrypt('acme', 'stripe', secret);
      const decrypted = await envelope.decrypt('acme', 'stripe', encrypted);

      const errors: unknown[] = [];
      for (const attempt of [
        envelope.decrypt('acme', 'stripe', { ...encrypted, tag: flipBit(encrypted.tag) }),
        envelope.decrypt('acme', 'other', encrypted),
        envelope.decrypt('nobody', 'stripe', encrypted),
      ]) {
        errors.push(await failure(attempt));
      }

      const forbidden = [
        CANARY,
        Buffer.from(CANARY).toString('base64'),
        Buffer.from(CANARY).toString('base64url'),
        Buffer.from(CANARY).toString('hex'),
        keyBytes.toString('base64'),
        keyBytes.toString('base64url'),
        keyBytes.toString('hex'),
      ];
      const renderings = [
        JSON.stringify({ encrypted, secret, decrypted, mk }),
        JSON.stringify((await keyring.get('acme'))!.value),
        inspect({ encrypted, secret, decrypted, mk, envelope, keyring }, { depth: 10, showHidden: true }),
        ...errors.map((e) => inspect(e, { depth: 10 })),
        ...errors.map((e) => JSON.stringify(e)),
        ...errors.map((e) => String(e)),
      ];
      for (const rendering of renderings) {
        for (const needle of forbidden) expect(rendering).not.toContain(needle);
      }
    });
  });
});

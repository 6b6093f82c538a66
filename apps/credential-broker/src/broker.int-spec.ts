import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importPKCS8, SignJWT } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentmeshError, BUCKETS, type CredentialInput, type RpcMap } from '#libs/contracts';
import { connectNats, openBucket, RpcClient, startService, type RunningService } from '#libs/messaging';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { startTokenEndpoint, type TokenEndpoint } from '../test/token-endpoint.js';
import { BROKER_OPTIONS, CredentialBroker, type BrokerOptions } from './broker.service.js';
import { addMasterKey, DELEGATION_KEY_FILE, MASTER_KEYS_FILE, readMasterKeysFile, retireMasterKeys } from './keys/key-files.js';
import { credentialBroker } from './service.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let runSeq = 0;
const runId = () => `run_01J${String(++runSeq).padStart(23, '0')}`;

async function startBroker(natsUrl: string, dataDir: string, env: Record<string, string> = {}, opts: BrokerOptions = {}): Promise<RunningService> {
  const module = credentialBroker.module;
  return startService({
    ...credentialBroker,
    module: { ...module, providers: [...(module.providers ?? []), { provide: BROKER_OPTIONS, useValue: opts }] },
    env: { NATS_URL: natsUrl, CREDENTIAL_BROKER_PORT: '0', LOG_LEVEL: 'silent', AGENTMESH_DATA_DIR: dataDir, ...env },
  });
}

/** The refusal of a call that must fail: its code and reason. */
async function refused(p: Promise<unknown>): Promise<{ code: string; reason?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(AgentmeshError);
    const err = e as AgentmeshError;
    return { code: err.code, reason: err.extra.reason, message: err.message };
  }
  throw new Error('expected the call to be refused, but it succeeded');
}

describe('the credential broker over NATS RPC (real nats-server)', () => {
  let srv: NatsServerHandle;
  let svc: RunningService;
  let nc: NatsConnection;
  let rpc: RpcClient;
  let dataDir: string;
  let oauth: TokenEndpoint;
  const SECRET = `sk_live_canary_${Math.random().toString(36).slice(2)}`;
  const OAUTH_SECRET = `oauth_client_secret_${Math.random().toString(36).slice(2)}`;

  beforeAll(async () => {
    srv = await startNatsServer();
    dataDir = mkdtempSync(join(tmpdir(), 'agentmesh-broker-'));
    svc = await startBroker(srv.url, dataDir, {}, { clockToleranceSeconds: 0 });
    nc = await connectNats(srv.url, 'broker-test');
    rpc = new RpcClient(nc, 10_000);
    oauth = await startTokenEndpoint({ 'agentmesh-client': OAUTH_SECRET });
  });
  afterAll(async () => {
    await oauth?.close();
    await nc?.close();
    await svc?.close();
    await srv?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const put = (tenantId: string, name: string, credential: CredentialInput) => rpc.call('credentials.put', { tenantId, name, credential });
  const mint = (tenantId: string, tool: string, version: string, credential: string, scopes: string[] = [], extra: Partial<RpcMap['credentials.mint']['req']> = {}) => {
    const id = runId();
    return rpc.call('credentials.mint', { tenantId, runId: id, step: 1, callKey: `${id}:1:0`, tool: { name: tool, version }, credential: { name: credential, scopes }, ...extra });
  };
  const redeem = (tenantId: string, tool: string, version: string, credentialName: string, delegation: string) =>
    rpc.call('credentials.redeem', { tenantId, tool: { name: tool, version }, credentialName, delegation });

  describe('storage', () => {
    it('generates the master key and the delegation signing key into the data folder with mode 0600', () => {
      for (const f of [MASTER_KEYS_FILE, DELEGATION_KEY_FILE]) {
        expect(statSync(join(dataDir, f)).mode & 0o777).toBe(0o600);
      }
      const keys = readMasterKeysFile(join(dataDir, MASTER_KEYS_FILE));
      expect(keys.keys).toHaveLength(1);
      expect(keys.active).toBe(keys.keys[0].id);
      expect(JSON.stringify(keys)).not.toMatch(/[A-Za-z0-9+/]{43}=/); // the key material never serialises
    });

    it('stores a secret encrypted and answers metadata only; replacing keeps createdAt', async () => {
      const first = await put('acme', 'stripe', { kind: 'bearer', secret: SECRET, allowedTools: ['charge'], scopes: ['charges:write'] });
      expect(first).toEqual({
        created: true,
        credential: { name: 'stripe', kind: 'bearer', allowedTools: ['charge'], scopes: ['charges:write'], createdAt: expect.any(String), updatedAt: expect.any(String) },
      });
      await sleep(5);
      const again = await put('acme', 'stripe', { kind: 'bearer', secret: SECRET, allowedTools: ['charge', 'refund@2'], scopes: ['charges:write', 'refunds:write'] });
      expect(again.created).toBe(false);
      expect(again.credential.createdAt).toBe(first.credential.createdAt);
      expect(again.credential.updatedAt > first.credential.updatedAt).toBe(true);
      const list = await rpc.call('credentials.list', { tenantId: 'acme' });
      expect(list.credentials.map((c) => c.name)).toContain('stripe');
      expect(JSON.stringify([first, again, list])).not.toContain(SECRET);

      // at rest: the KV entry holds ciphertext and metadata, not the secret; the tenant has a wrapped data key
      const raw = new TextDecoder().decode((await (await openBucket(nc, BUCKETS.credentials)).get('acme.stripe'))!.value);
      expect(raw).not.toContain(SECRET);
      expect(JSON.parse(raw)).toMatchObject({ tenantId: 'acme', name: 'stripe', secret: { v: 1, alg: 'A256GCM' }, metadata: { kind: 'bearer' } });
      const ring = await (await openBucket(nc, BUCKETS.keyring)).get('acme');
      expect(ring?.operation).toBe('PUT');
    });

    it('refuses invalid bodies naming the field, never quoting the secret', async () => {
      const bad: unknown[] = [
        { kind: 'bearer', secret: SECRET, allowedTools: [] },
        { kind: 'bearer', secret: SECRET, allowedTools: ['x'], clientId: 'id' },
        { kind: 'bearer', secret: SECRET, allowedTools: ['x'], header: 'X-Key' },
        { kind: 'api_key', secret: SECRET, allowedTools: ['x'], header: 'Idempotency-Key' },
        { kind: 'api_key', secret: SECRET, allowedTools: ['x'], header: `bad header ${SECRET}` },
        { kind: 'oauth2_client_credentials', clientId: 'c', clientSecret: SECRET, tokenUrl: 'http://tokens.example.com/token', allowedTools: ['x'] },
        { kind: 'password', secret: SECRET, allowedTools: ['x'] },
        { kind: 'bearer', secret: 42, allowedTools: ['x'], extra: SECRET },
      ];
      for (const credential of bad) {
        const r = await refused(put('acme', 'broken', credential as CredentialInput));
        expect(r.code).toBe('invalid_argument');
        expect(JSON.stringify(r)).not.toContain(SECRET);
      }
      expect((await rpc.call('credentials.list', { tenantId: 'acme' })).credentials.map((c) => c.name)).not.toContain('broken');
    });
  });

  describe('delegations', () => {
    it('mints a delegation for an allowed tool and redeems it once for the header to send', async () => {
      await put('acme', 'bearer1', { kind: 'bearer', secret: SECRET, allowedTools: ['charge'], scopes: [] });
      const m = await mint('acme', 'charge', '1', 'bearer1');
      expect(m.delegation).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
      expect(m.delegation).not.toContain(SECRET);
      expect(Date.parse(m.expiresAt) - Date.now()).toBeLessThanOrEqual(60_000);
      const r = await redeem('acme', 'charge', '1', 'bearer1', m.delegation);
      expect(r).toEqual({ credential: 'bearer1', kind: 'bearer', scopes: [], inject: { header: 'authorization', value: `Bearer ${SECRET}` } });
      expect(await refused(redeem('acme', 'charge', '1', 'bearer1', m.delegation))).toMatchObject({ code: 'permission_denied', reason: 'delegation_replayed' });
    });

    it('sends api keys in X-API-Key, or in the header the credential names', async () => {
      await put('acme', 'key-default', { kind: 'api_key', secret: SECRET, allowedTools: ['search'] });
      await put('acme', 'key-custom', { kind: 'api_key', secret: SECRET, allowedTools: ['search'], header: 'X-Search-Token' });
      expect((await redeem('acme', 'search', '3', 'key-default', (await mint('acme', 'search', '3', 'key-default')).delegation)).inject)
        .toEqual({ header: 'X-API-Key', value: SECRET });
      expect((await redeem('acme', 'search', '3', 'key-custom', (await mint('acme', 'search', '3', 'key-custom')).delegation)).inject)
        .toEqual({ header: 'X-Search-Token', value: SECRET });
    });

    it('lets only one of two broker replicas redeem a delegation presented to both at once', async () => {
      const second = await startBroker(srv.url, dataDir, {}, { clockToleranceSeconds: 0 });
      try {
        const brokers = [svc.app.get(CredentialBroker), second.app.get(CredentialBroker)];
        const m = await mint('acme', 'charge', '1', 'bearer1');
        const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => brokers[i % 2].redeem({
          tenantId: 'acme', tool: { name: 'charge', version: '1' }, credentialName: 'bearer1', delegation: m.delegation,
        })));
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
        for (const o of outcomes) if (o.status === 'rejected') expect((o.reason as AgentmeshError).extra.reason).toBe('delegation_replayed');
      } finally {
        await second.close();
      }
    });

    it('refuses an expired delegation', async () => {
      const m = await mint('acme', 'charge', '1', 'bearer1', [], { ttlSeconds: 1 });
      await sleep(2100);
      expect(await refused(redeem('acme', 'charge', '1', 'bearer1', m.delegation))).toMatchObject({ code: 'permission_denied', reason: 'delegation_expired' });
    });

    it('refuses a delegation for another audience, even signed with the broker key, and a forged one', async () => {
      const key = await importPKCS8(readFileSync(join(dataDir, DELEGATION_KEY_FILE), 'utf8'), 'Ed25519');
      const now = Math.floor(Date.now() / 1000);
      const sign = (aud: string, k = key) => new SignJWT({ tid: 'acme', run: runId(), step: '1', tool: 'charge', tver: '1', cred: 'bearer1', scope: '' })
        .setProtectedHeader({ alg: 'Ed25519', kid: 'd1', typ: 'agentmesh-delegation+jwt' })
        .setIssuer('agentmesh-credential-broker').setAudience(aud).setJti(crypto.randomUUID()).setIssuedAt(now).setExpirationTime(now + 60)
        .sign(k);
      expect(await refused(redeem('acme', 'charge', '1', 'bearer1', await sign('agentmesh-gateway')))).toMatchObject({ reason: 'delegation_wrong_audience' });
      const { privateKey } = await (await import('jose')).generateKeyPair('Ed25519');
      expect(await refused(redeem('acme', 'charge', '1', 'bearer1', await sign('agentmesh-tool-runner', privateKey as never)))).toMatchObject({ reason: 'delegation_invalid' });
      expect(await refused(redeem('acme', 'charge', '1', 'bearer1', 'not-a-jwt'))).toMatchObject({ reason: 'delegation_invalid' });
      expect(await refused(redeem('acme', 'charge', '1', 'bearer1', ''))).toMatchObject({ reason: 'credential_missing' });
    });

    it("never lets tenant B use tenant A's credential", async () => {
      const m = await mint('acme', 'charge', '1', 'bearer1');
      // B presents A's delegation for the same tool and credential name
      await put('globex', 'bearer1', { kind: 'bearer', secret: 'globex-own-secret', allowedTools: ['charge'] });
      const r = await refused(redeem('globex', 'charge', '1', 'bearer1', m.delegation));
      expect(r).toMatchObject({ code: 'permission_denied', reason: 'credential_wrong_tenant' });
      expect(r.message).not.toContain(SECRET);
      // A's delegation was not consumed by the refused attempt: A still redeems it, and gets A's secret
      expect((await redeem('acme', 'charge', '1', 'bearer1', m.delegation)).inject.value).toBe(`Bearer ${SECRET}`);
      // B asking for a delegation of a credential only A has gets nothing
      expect(await refused(mint('globex', 'charge', '1', 'stripe'))).toMatchObject({ code: 'not_found', reason: 'credential_not_found' });
      // B's own delegation of its own credential redeems to B's secret
      expect((await redeem('globex', 'charge', '1', 'bearer1', (await mint('globex', 'charge', '1', 'bearer1')).delegation)).inject.value).toBe('Bearer globex-own-secret');
    });

    it('lets only the tools in allowedTools use a credential, and the tool the delegation names', async () => {
      await put('acme', 'narrow', { kind: 'bearer', secret: SECRET, allowedTools: ['charge', 'refund@2'] });
      expect(await refused(mint('acme', 'export', '1', 'narrow'))).toMatchObject({ code: 'permission_denied', reason: 'credential_tool_not_allowed' });
      expect(await refused(mint('acme', 'refund', '1', 'narrow'))).toMatchObject({ reason: 'credential_tool_not_allowed' });
      await mint('acme', 'refund', '2', 'narrow');
      // minted for charge@1: neither another tool nor another version may redeem it
      const m = await mint('acme', 'charge', '1', 'narrow');
      expect(await refused(redeem('acme', 'export', '1', 'narrow', m.delegation))).toMatchObject({ reason: 'credential_tool_not_allowed' });
      expect(await refused(redeem('acme', 'charge', '9', 'narrow', m.delegation))).toMatchObject({ reason: 'credential_tool_not_allowed' });
      expect(await refused(redeem('acme', 'charge', '1', 'bearer1', m.delegation))).toMatchObject({ reason: 'credential_mismatch' });
      // allowedTools narrowed after minting: the delegation no longer redeems
      await put('acme', 'narrow', { kind: 'bearer', secret: SECRET, allowedTools: ['refund@2'] });
      expect(await refused(redeem('acme', 'charge', '1', 'narrow', m.delegation))).toMatchObject({ reason: 'credential_tool_not_allowed' });
    });

    it('grants the scopes the tool asks for that the credential allows', async () => {
      await put('acme', 'scoped', { kind: 'bearer', secret: SECRET, allowedTools: ['charge'], scopes: ['read', 'write'] });
      const m = await mint('acme', 'charge', '1', 'scoped', ['write', 'admin']);
      expect(m.scopes).toEqual(['write']);
      expect((await redeem('acme', 'charge', '1', 'scoped', m.delegation)).scopes).toEqual(['write']);
      expect(await refused(mint('acme', 'charge', '1', 'scoped', ['admin']))).toMatchObject({ reason: 'credential_scope_not_allowed' });
    });

    it('fails closed once a credential is revoked: outstanding delegations and new ones', async () => {
      await put('acme', 'doomed', { kind: 'api_key', secret: SECRET, allowedTools: ['charge'] });
      const outstanding = await mint('acme', 'charge', '1', 'doomed');
      expect(await rpc.call('credentials.revoke', { tenantId: 'acme', name: 'doomed' })).toEqual({ name: 'doomed', revoked: true });
      expect(await refused(redeem('acme', 'charge', '1', 'doomed', outstanding.delegation))).toMatchObject({ code: 'permission_denied', reason: 'credential_revoked' });
      expect(await refused(mint('acme', 'charge', '1', 'doomed'))).toMatchObject({ code: 'permission_denied', reason: 'credential_revoked' });
      expect((await rpc.call('credentials.list', { tenantId: 'acme' })).credentials.map((c) => c.name)).not.toContain('doomed');
      expect(await refused(rpc.call('credentials.revoke', { tenantId: 'acme', name: 'doomed' }))).toMatchObject({ code: 'not_found' });
      // storing it again makes it usable again
      await put('acme', 'doomed', { kind: 'api_key', secret: SECRET, allowedTools: ['charge'] });
      await redeem('acme', 'charge', '1', 'doomed', (await mint('acme', 'charge', '1', 'doomed')).delegation);
    });

    it('reads the KV records written before libs/store: a record at <tenant>.<name> is used, its delete marker is a revocation', async () => {
      await put('acme', 'legacy', { kind: 'bearer', secret: SECRET, allowedTools: ['charge'], scopes: ['a'] });
      const bucket = await openBucket(nc, BUCKETS.credentials);
      const written = JSON.parse(new TextDecoder().decode((await bucket.get('acme.legacy'))!.value)) as Record<string, unknown>;
      // rewritten exactly as the broker's own KvCredentialStore wrote it (same key, same fields, same order)
      const old = { tenantId: 'acme', name: 'legacy', secret: written.secret, metadata: { kind: 'bearer', allowedTools: ['charge'], scopes: ['a'] }, createdAt: '2025-01-01T00:00:00.000Z', updatedAt: '2025-01-01T00:00:00.000Z' };
      await bucket.put('acme.legacy', JSON.stringify(old));
      expect((await rpc.call('credentials.list', { tenantId: 'acme' })).credentials).toContainEqual({ name: 'legacy', kind: 'bearer', allowedTools: ['charge'], scopes: ['a'], createdAt: old.createdAt, updatedAt: old.updatedAt });
      const r = await redeem('acme', 'charge', '1', 'legacy', (await mint('acme', 'charge', '1', 'legacy', ['a'])).delegation);
      expect(r.inject).toEqual({ header: 'authorization', value: `Bearer ${SECRET}` });
      // replacing keeps the old createdAt
      expect((await put('acme', 'legacy', { kind: 'bearer', secret: SECRET, allowedTools: ['charge'] })).credential.createdAt).toBe(old.createdAt);
      await bucket.delete('acme.legacy'); // how the broker revoked before
      expect(await refused(mint('acme', 'charge', '1', 'legacy'))).toMatchObject({ code: 'permission_denied', reason: 'credential_revoked' });
    });
  });

  describe('OAuth2 client credentials against a real token endpoint', () => {
    it('fetches a token for the granted scopes, caches it, and sends it as a bearer token', async () => {
      await put('acme', 'crm', {
        kind: 'oauth2_client_credentials', clientId: 'agentmesh-client', clientSecret: OAUTH_SECRET, tokenUrl: oauth.url,
        allowedTools: ['crm_sync'], scopes: ['contacts.read', 'contacts.write'],
      });
      const before = oauth.requests;
      const a = await redeem('acme', 'crm_sync', '1', 'crm', (await mint('acme', 'crm_sync', '1', 'crm', ['contacts.read'])).delegation);
      const b = await redeem('acme', 'crm_sync', '1', 'crm', (await mint('acme', 'crm_sync', '1', 'crm', ['contacts.read'])).delegation);
      expect(a.inject.header).toBe('authorization');
      const token = a.inject.value.replace(/^Bearer /, '');
      expect(oauth.issued.get(token)).toBe('agentmesh-client');
      expect(b.inject.value).toBe(a.inject.value); // cached
      expect(oauth.requests - before).toBe(1);
      expect(oauth.scopes.at(-1)).toBe('contacts.read');
      // another scope set is another token
      const c = await redeem('acme', 'crm_sync', '1', 'crm', (await mint('acme', 'crm_sync', '1', 'crm', ['contacts.write', 'contacts.read'])).delegation);
      expect(c.inject.value).not.toBe(a.inject.value);
      expect(oauth.scopes.at(-1)).toBe('contacts.read contacts.write');
    });

    it('refreshes a token before it expires', async () => {
      await put('acme', 'crm-short', {
        kind: 'oauth2_client_credentials', clientId: 'agentmesh-client', clientSecret: OAUTH_SECRET, tokenUrl: oauth.url, allowedTools: ['crm_sync'],
      });
      oauth.expiresIn = 2; // refreshed half-way through such a short life
      try {
        const first = await redeem('acme', 'crm_sync', '1', 'crm-short', (await mint('acme', 'crm_sync', '1', 'crm-short')).delegation);
        await sleep(1200);
        const second = await redeem('acme', 'crm_sync', '1', 'crm-short', (await mint('acme', 'crm_sync', '1', 'crm-short')).delegation);
        expect(second.inject.value).not.toBe(first.inject.value);
      } finally {
        oauth.expiresIn = 3600;
      }
    });

    it('answers a refused token request without the client secret; a replaced credential gets a new token', async () => {
      await put('acme', 'crm-bad', {
        kind: 'oauth2_client_credentials', clientId: 'agentmesh-client', clientSecret: 'wrong-secret', tokenUrl: oauth.url, allowedTools: ['crm_sync'],
      });
      const r = await refused(redeem('acme', 'crm_sync', '1', 'crm-bad', (await mint('acme', 'crm_sync', '1', 'crm-bad')).delegation));
      expect(r).toMatchObject({ code: 'permission_denied', reason: 'oauth_token_rejected' });
      expect(r.message).toMatch(/invalid_client/);
      expect(r.message).not.toContain('wrong-secret');
      await put('acme', 'crm-bad', {
        kind: 'oauth2_client_credentials', clientId: 'agentmesh-client', clientSecret: OAUTH_SECRET, tokenUrl: oauth.url, allowedTools: ['crm_sync'],
      });
      const ok = await redeem('acme', 'crm_sync', '1', 'crm-bad', (await mint('acme', 'crm_sync', '1', 'crm-bad')).delegation);
      expect(oauth.issued.has(ok.inject.value.replace(/^Bearer /, ''))).toBe(true);
    });
  });

  describe('master key rotation', () => {
    it('re-wraps every data key under a new key while delegations are redeemed, then retires the old key', async () => {
      const tenants = ['rot-a', 'rot-b', 'rot-c'];
      for (const t of tenants) await put(t, 'k', { kind: 'bearer', secret: `${SECRET}-${t}`, allowedTools: ['charge'] });
      const file = join(dataDir, MASTER_KEYS_FILE);
      const before = await rpc.call('credentials.keys', {});
      let stop = false;
      let calls = 0;
      const traffic = (async () => {
        while (!stop) {
          for (const t of tenants) {
            const r = await redeem(t, 'charge', '1', 'k', (await mint(t, 'charge', '1', 'k')).delegation);
            expect(r.inject.value).toBe(`Bearer ${SECRET}-${t}`);
            calls++;
          }
        }
      })();
      await sleep(50);
      const { id, previous } = addMasterKey(file);
      expect(previous).toBe(before.activeMasterKeyId);
      const report = await rpc.call('credentials.rotate', { reload: true });
      expect(report.failed).toEqual([]);
      expect(report.activeMasterKeyId).toBe(id);
      expect(report.rewrapped).toBeGreaterThanOrEqual(tenants.length);
      expect(report.dataKeys).toEqual({ [id]: expect.any(Number) });
      expect(retireMasterKeys(file)).toEqual([previous]);
      // a tenant stored after the old key is gone
      await put('rot-d', 'k', { kind: 'bearer', secret: `${SECRET}-rot-d`, allowedTools: ['charge'] });
      await sleep(50);
      stop = true;
      await traffic;
      expect(calls).toBeGreaterThan(tenants.length);
      expect(await rpc.call('credentials.keys', {})).toEqual({ activeMasterKeyId: id, masterKeyIds: [id], dataKeys: { [id]: expect.any(Number) } });
      expect(JSON.stringify(report)).not.toContain(SECRET);

      // a broker started afresh (no cached data keys) knows only the new key and reads everything
      await svc.close();
      svc = await startBroker(srv.url, dataDir, {}, { clockToleranceSeconds: 0 });
      for (const t of [...tenants, 'rot-d']) {
        expect((await redeem(t, 'charge', '1', 'k', (await mint(t, 'charge', '1', 'k')).delegation)).inject.value).toBe(`Bearer ${SECRET}-${t}`);
      }
    });
  });
});

describe('master keys from the environment (AGENTMESH_MASTER_KEYS)', () => {
  let srv: NatsServerHandle;
  let dataDir: string;
  const k1 = `k1:${Buffer.alloc(32, 1).toString('base64')}`;
  const k2 = `k2:${Buffer.alloc(32, 2).toString('base64')}`;

  beforeAll(async () => {
    srv = await startNatsServer();
    dataDir = mkdtempSync(join(tmpdir(), 'agentmesh-broker-env-'));
  });
  afterAll(async () => {
    await srv?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('rotates by adding a key, making it active, re-wrapping, and dropping the old one; nothing is lost', async () => {
    const nc = await connectNats(srv.url, 'broker-env-test');
    const rpc = new RpcClient(nc, 10_000);
    const cycle = async (env: Record<string, string>, fn: () => Promise<void>) => {
      const svc = await startBroker(srv.url, dataDir, env);
      try { await fn(); } finally { await svc.close(); }
    };
    const use = async () => {
      const id = runId();
      const m = await rpc.call('credentials.mint', { tenantId: 'envt', runId: id, step: 1, callKey: `${id}:1:0`, tool: { name: 'charge', version: '1' }, credential: { name: 'k', scopes: [] } });
      return (await rpc.call('credentials.redeem', { tenantId: 'envt', tool: { name: 'charge', version: '1' }, credentialName: 'k', delegation: m.delegation })).inject.value;
    };
    try {
      await cycle({ AGENTMESH_MASTER_KEYS: k1 }, async () => {
        await rpc.call('credentials.put', { tenantId: 'envt', name: 'k', credential: { kind: 'bearer', secret: 'env-secret', allowedTools: ['charge'] } });
        expect((await rpc.call('credentials.keys', {})).dataKeys).toEqual({ k1: 1 });
      });
      await cycle({ AGENTMESH_MASTER_KEYS: `${k1},${k2}`, AGENTMESH_MASTER_KEY_ACTIVE: 'k2' }, async () => {
        expect(await use()).toBe('Bearer env-secret');
        const report = await rpc.call('credentials.rotate', {});
        expect(report).toMatchObject({ activeMasterKeyId: 'k2', rewrapped: 1, failed: [], dataKeys: { k2: 1 } });
      });
      await cycle({ AGENTMESH_MASTER_KEYS: k2 }, async () => {
        expect(await use()).toBe('Bearer env-secret');
      });
      // no key file was written: the environment is the source of the keys
      expect(() => statSync(join(dataDir, MASTER_KEYS_FILE))).toThrow();
    } finally {
      await nc.close();
    }
  });
});

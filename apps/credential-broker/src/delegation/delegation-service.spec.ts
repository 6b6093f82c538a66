import { beforeAll, describe, expect, it } from '@jest/globals';
import { SignJWT, UnsecuredJWT } from 'jose';
import { inspect } from 'node:util';
import { SecretValue } from '../crypto/secret-value.js';
import {
  DELEGATION_TYPE,
  DelegationService,
  intersectScopes,
  type CredentialPolicy,
  type DelegationServiceOptions,
  type MintRequest,
} from './delegation-service.js';
import { DelegationError } from './errors.js';
import { generateDelegationKeys, type DelegationKeyPair } from './keys.js';
import { InMemoryReplayCache } from './replay-cache.js';

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
const TOOL = { name: 'stripe.refund', version: '1.2.0' };

async function failure(promise: Promise<unknown>): Promise<DelegationError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(DelegationError);
    return error as DelegationError;
  }
  throw new Error('expected a DelegationError, but the call succeeded');
}

let keys: DelegationKeyPair;
beforeAll(async () => {
  keys = await generateDelegationKeys('dk-1');
});

function setup(overrides: Partial<DelegationServiceOptions> = {}) {
  const clock = { now: T0 };
  const now = () => clock.now;
  const credentials = new Map<string, CredentialPolicy>([
    ['acme/stripe', { name: 'stripe', allowedTools: ['stripe.refund', 'billing.sync@2.0.0'], scopes: ['refunds:write', 'charges:read'] }],
  ]);
  const replayCache = new InMemoryReplayCache({ now });
  const service = new DelegationService({
    signingKey: keys.signing,
    verificationKeys: [keys.verification],
    replayCache,
    credentials: { get: async (tenant, name) => credentials.get(`${tenant}/${name}`) },
    now,
    ...overrides,
  });
  const request = (extra: Partial<MintRequest> = {}): MintRequest => ({
    tenantId: 'acme',
    runId: 'run-1',
    stepId: '3',
    tool: TOOL,
    credential: credentials.get('acme/stripe')!,
    requestedScopes: ['refunds:write'],
    ...extra,
  });
  return { service, clock, credentials, replayCache, request };
}

describe('DelegationService', () => {
  it('mints a delegation bound to tenant, run, step, tool, audience and credential, and redeems it once', async () => {
    const { service, request } = setup();
    const minted = await service.mint(request());
    expect(minted.expiresAt).toBe(T0 + 60_000);
    expect(minted.scopes).toEqual(['refunds:write']);

    const redeemed = await service.redeem(minted.token, { tenantId: 'acme', tool: TOOL });
    expect(redeemed).toMatchObject({
      jti: minted.jti,
      tenantId: 'acme',
      runId: 'run-1',
      stepId: '3',
      tool: TOOL,
      credentialName: 'stripe',
      scopes: ['refunds:write'],
      issuedAt: T0,
      expiresAt: T0 + 60_000,
    });
    expect(redeemed.credential.name).toBe('stripe');
  });

  it('refuses a second redemption of the same delegation', async () => {
    const { service, request } = setup();
    const minted = await service.mint(request());
    await service.redeem(minted.token, { tenantId: 'acme', tool: TOOL });
    const error = await failure(service.redeem(minted.token, { tenantId: 'acme', tool: TOOL }));
    expect(error.code).toBe('replayed');
    expect(error.name).toBe('DelegationError');
  });

  it('lets exactly one of several concurrent redemptions win', async () => {
    const { service, request } = setup();
    const minted = await service.mint(request());
    const outcomes = await Promise.allSettled(
      Array.from({ length: 8 }, () => service.redeem(minted.token, { tenantId: 'acme', tool: TOOL })),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes) {
      if (o.status === 'rejected') expect((o.reason as DelegationError).code).toBe('replayed');
    }
  });

  it('shares single use across replicas that share a replay cache', async () => {
    const { service, request, replayCache, credentials } = setup();
    const replica = new DelegationService({
      signingKey: keys.signing,
      verificationKeys: [keys.verification],
      replayCache,
      credentials: { get: async (tenant, name) => credentials.get(`${tenant}/${name}`) },
      now: () => T0,
    });
    const minted = await service.mint(request());
    await replica.redeem(minted.token, { tenantId: 'acme', tool: TOOL });
    expect((await failure(service.redeem(minted.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('replayed');
  });

  describe('expiry', () => {
    it('expires after the default 60 seconds', async () => {
      const { service, clock, request } = setup();
      const early = await service.mint(request());
      const late = await service.mint(request());
      clock.now = T0 + 59_999;
      await service.redeem(early.token, { tenantId: 'acme', tool: TOOL });
      clock.now = T0 + 60_000;
      expect((await failure(service.redeem(late.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('expired');
    });

    it('honours a configured lifetime and caps it', async () => {
      const { service, clock, request } = setup({ defaultTtlSeconds: 5, maxTtlSeconds: 30 });
      const minted = await service.mint(request());
      expect(minted.expiresAt).toBe(T0 + 5_000);
      expect((await service.mint(request({ ttlSeconds: 30 }))).expiresAt).toBe(T0 + 30_000);
      expect((await failure(service.mint(request({ ttlSeconds: 31 })))).code).toBe('invalid_request');
      clock.now = T0 + 5_000;
      expect((await failure(service.redeem(minted.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('expired');
    });

    it('accepts a clock difference within the configured tolerance', async () => {
      const { service, clock, request } = setup({ clockToleranceSeconds: 5 });
      const minted = await service.mint(request());
      clock.now = T0 + 64_000;
      await service.redeem(minted.token, { tenantId: 'acme', tool: TOOL });
    });

    it('forgets consumed ids once their delegations have expired', async () => {
      const { service, clock, request, replayCache } = setup();
      const minted = await service.mint(request());
      await service.redeem(minted.token, { tenantId: 'acme', tool: TOOL });
      expect(replayCache.size).toBe(1);
      clock.now = T0 + 61_000;
      expect(await replayCache.consume('other', clock.now + 1_000)).toBe(true);
      expect(replayCache.size).toBe(1);
      expect((await failure(service.redeem(minted.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('expired');
    });
  });

  it('refuses a delegation minted for another audience', async () => {
    const { service, request, replayCache } = setup();
    const other = new DelegationService({
      signingKey: keys.signing,
      verificationKeys: [keys.verification],
      replayCache,
      credentials: { get: async () => undefined },
      now: () => T0,
      audience: 'agentmesh-something-else',
    });
    const minted = await other.mint(request());
    expect((await failure(service.redeem(minted.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('wrong_audience');
  });

  it('refuses redemption for another tenant, without consuming the delegation', async () => {
    const { service, request } = setup();
    const minted = await service.mint(request());
    expect((await failure(service.redeem(minted.token, { tenantId: 'globex', tool: TOOL }))).code).toBe('wrong_tenant');
    await service.redeem(minted.token, { tenantId: 'acme', tool: TOOL });
  });

  describe('tools', () => {
    it('refuses redemption for another tool or version than the one it was minted for', async () => {
      const { service, request } = setup();
      const minted = await service.mint(request());
      const otherTool = service.redeem(minted.token, { tenantId: 'acme', tool: { name: 'billing.sync', version: '2.0.0' } });
      expect((await failure(otherTool)).code).toBe('tool_not_allowed');
      const otherVersion = service.redeem(minted.token, { tenantId: 'acme', tool: { ...TOOL, version: '1.3.0' } });
      expect((await failure(otherVersion)).code).toBe('tool_not_allowed');
    });

    it('refuses to mint for a tool outside the credential allowedTools, honouring name@version entries', async () => {
      const { service, request } = setup();
      const unknown = service.mint(request({ tool: { name: 'github.push', version: '1.0.0' } }));
      expect((await failure(unknown)).code).toBe('tool_not_allowed');
      const wrongVersion = service.mint(request({ tool: { name: 'billing.sync', version: '2.0.1' } }));
      expect((await failure(wrongVersion)).code).toBe('tool_not_allowed');
      await service.mint(request({ tool: { name: 'billing.sync', version: '2.0.0' } }));
      await service.mint(request({ tool: { name: 'stripe.refund', version: '9.9.9' } }));
    });

    it('refuses redemption once the tool was removed from the credential allowedTools', async () => {
      const { service, request, credentials } = setup();
      const minted = await service.mint(request());
      credentials.set('acme/stripe', { ...credentials.get('acme/stripe')!, allowedTools: ['billing.sync'] });
      expect((await failure(service.redeem(minted.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('tool_not_allowed');
    });
  });

  describe('scopes', () => {
    it('carries the intersection of the credential scopes and the tool requested scopes', async () => {
      const { service, request } = setup();
      const minted = await service.mint(
        request({ requestedScopes: ['charges:read', 'admin', 'refunds:write', 'charges:read'] }),
      );
      expect(minted.scopes).toEqual(['charges:read', 'refunds:write']);
      const redeemed = await service.redeem(minted.token, { tenantId: 'acme', tool: TOOL });
      expect(redeemed.scopes).toEqual(['charges:read', 'refunds:write']);
      expect(intersectScopes(['a', 'b'], [])).toEqual([]);
      expect(intersectScopes([], ['a'])).toEqual([]);
    });

    it('mints without scopes when the tool asks for none, and refuses when none it asks for are allowed', async () => {
      const { service, request } = setup();
      expect((await service.mint(request({ requestedScopes: [] }))).scopes).toEqual([]);
      expect((await failure(service.mint(request({ requestedScopes: ['admin'] })))).code).toBe('scope_not_allowed');
      expect((await failure(service.mint(request({ requestedScopes: ['bad scope'] })))).code).toBe('invalid_request');
    });

    it('narrows scopes at redemption when the credential lost some since minting', async () => {
      const { service, request, credentials } = setup();
      const minted = await service.mint(request({ requestedScopes: ['charges:read', 'refunds:write'] }));
      credentials.set('acme/stripe', { ...credentials.get('acme/stripe')!, scopes: ['charges:read'] });
      expect((await service.redeem(minted.token, { tenantId: 'acme', tool: TOOL })).scopes).toEqual(['charges:read']);
    });
  });

  describe('revocation', () => {
    it('refuses a delegation whose credential was deleted or revoked', async () => {
      const { service, request, credentials } = setup();
      const a = await service.mint(request());
      const b = await service.mint(request());
      credentials.set('acme/stripe', { ...credentials.get('acme/stripe')!, revoked: true });
      expect((await failure(service.redeem(a.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('revoked');
      expect((await failure(service.mint(request({ credential: credentials.get('acme/stripe')! })))).code).toBe('revoked');
      credentials.delete('acme/stripe');
      expect((await failure(service.redeem(b.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('revoked');
    });

    it('refuses a delegation revoked through the revocation hook', async () => {
      const cancelledRuns = new Set(['run-1']);
      const { service, request } = setup({ revocations: { isRevoked: async (d) => cancelledRuns.has(d.runId) } });
      const minted = await service.mint(request());
      expect((await failure(service.redeem(minted.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('revoked');
      const other = await service.mint(request({ runId: 'run-2' }));
      await service.redeem(other.token, { tenantId: 'acme', tool: TOOL });
    });
  });

  describe('signatures', () => {
    it('refuses a delegation signed by an untrusted key, even under a trusted key id', async () => {
      const { service, request } = setup();
      const attacker = await generateDelegationKeys('dk-1');
      const { service: forger } = setup({ signingKey: attacker.signing, verificationKeys: [attacker.verification] });
      const forged = await forger.mint(request());
      expect((await failure(service.redeem(forged.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('bad_signature');
      const unknownKid = await generateDelegationKeys('dk-unknown');
      const { service: stranger } = setup({ signingKey: unknownKid.signing, verificationKeys: [unknownKid.verification] });
      const foreign = await stranger.mint(request());
      expect((await failure(service.redeem(foreign.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('bad_signature');
    });

    it('refuses a delegation whose claims were altered after signing', async () => {
      const { service, request } = setup();
      const minted = await service.mint(request());
      const [header, payload, signature] = minted.token.reveal().split('.');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
      claims.tid = 'globex';
      const altered = [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
      expect((await failure(service.redeem(altered, { tenantId: 'globex', tool: TOOL }))).code).toBe('bad_signature');
    });

    it('refuses unsigned tokens, other token types and garbage', async () => {
      const { service } = setup();
      const unsecured = new UnsecuredJWT({ tid: 'acme' }).setAudience('agentmesh-tool-runner').encode();
      expect((await failure(service.redeem(unsecured, { tenantId: 'acme', tool: TOOL }))).code).toBe('bad_signature');
      const otherType = await new SignJWT({ tid: 'acme' })
        .setProtectedHeader({ alg: keys.signing.alg, kid: keys.signing.kid, typ: 'JWT' })
        .setAudience('agentmesh-tool-runner')
        .setIssuer('agentmesh-credential-broker')
        .setJti('x')
        .setIssuedAt(T0 / 1000)
        .setExpirationTime(T0 / 1000 + 60)
        .sign(keys.signing.privateKey);
      expect((await failure(service.redeem(otherType, { tenantId: 'acme', tool: TOOL }))).code).toBe('invalid_token');
      const missingClaims = await new SignJWT({ tid: 'acme' })
        .setProtectedHeader({ alg: keys.signing.alg, kid: keys.signing.kid, typ: DELEGATION_TYPE })
        .setAudience('agentmesh-tool-runner')
        .setIssuer('agentmesh-credential-broker')
        .setJti('x')
        .setIssuedAt(T0 / 1000)
        .setExpirationTime(T0 / 1000 + 60)
        .sign(keys.signing.privateKey);
      expect((await failure(service.redeem(missingClaims, { tenantId: 'acme', tool: TOOL }))).code).toBe('invalid_token');
      for (const garbage of ['', 'not-a-jwt', 'a.b.c']) {
        expect((await failure(service.redeem(garbage, { tenantId: 'acme', tool: TOOL }))).code).toBe('invalid_token');
      }
    });

    it('verifies delegations signed with a previous key while it is still trusted', async () => {
      const next = await generateDelegationKeys('dk-2', 'ES256');
      const { service: before, request } = setup();
      const minted = await before.mint(request());
      const { service: after } = setup({ signingKey: next.signing, verificationKeys: [keys.verification, next.verification] });
      await after.redeem(minted.token, { tenantId: 'acme', tool: TOOL });
      const fresh = await after.mint(request());
      await after.redeem(fresh.token, { tenantId: 'acme', tool: TOOL });
      const { service: retired } = setup({ signingKey: next.signing, verificationKeys: [next.verification] });
      const old = await before.mint(request());
      expect((await failure(retired.redeem(old.token, { tenantId: 'acme', tool: TOOL }))).code).toBe('bad_signature');
    });
  });

  it('never shows the token in renderings of the delegation or in any error', async () => {
    const { service, request, clock } = setup();
    const minted = await service.mint(request());
    const token = minted.token.reveal();
    const signature = token.split('.')[2];
    expect(JSON.stringify(minted)).not.toContain(signature);
    expect(inspect(minted, { depth: 10 })).not.toContain(signature);

    const errors: DelegationError[] = [];
    errors.push(await failure(service.redeem(minted.token, { tenantId: 'globex', tool: TOOL })));
    await service.redeem(minted.token, { tenantId: 'acme', tool: TOOL });
    errors.push(await failure(service.redeem(minted.token, { tenantId: 'acme', tool: TOOL })));
    clock.now = T0 + 120_000;
    errors.push(await failure(service.redeem(token, { tenantId: 'acme', tool: TOOL })));
    errors.push(await failure(service.redeem(token.slice(0, -4) + 'AAAA', { tenantId: 'acme', tool: TOOL })));
    expect(errors.map((e) => e.code)).toEqual(['wrong_tenant', 'replayed', 'expired', 'bad_signature']);
    for (const error of errors) {
      for (const rendering of [error.message, inspect(error, { depth: 10 }), JSON.stringify(error), String(error.stack)]) {
        expect(rendering).not.toContain(signature);
        expect(rendering).not.toContain(token);
      }
    }
  });

  it('accepts the token as a SecretValue or a string', async () => {
    const { service, request } = setup();
    const minted = await service.mint(request());
    await service.redeem(SecretValue.from(minted.token.reveal()), { tenantId: 'acme', tool: TOOL });
  });
});

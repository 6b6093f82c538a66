import { describe, expect, it } from '@jest/globals';
import { assertTenantId, cleanCredential, hourRange, parseAuditCursor, auditCursor } from './common.js';
import type { Repositories, TenantRepositories } from './repositories.js';

/**
 * Compile-time checks (run by `npm run typecheck`; ts-jest here only transpiles): a tenant's data
 * is reachable only through `forTenant(id)`, and no tenant-scoped method takes a tenant argument.
 */
export function typeChecks(repos: Repositories, scoped: TenantRepositories): void {
  // @ts-expect-error runs are not reachable without a tenant
  void repos.runs;
  // @ts-expect-error agents are not reachable without a tenant
  void repos.agents;
  // @ts-expect-error a tenant-scoped method takes no tenant id
  void scoped.runs.list('acme', {});
  // @ts-expect-error nor does a credential read
  void scoped.credentials.get('acme', 'github');
  // @ts-expect-error a credential has no plaintext field
  void scoped.credentials.put('github', { v: 1, alg: 'A256GCM', dataKeyId: 'k', nonce: 'n', ciphertext: 'c', tag: 't', plaintext: 'p' }, { kind: 'bearer' }, '');
  void repos.forTenant('acme').runs.list({ status: 'running' });
}

describe('tenant scoping', () => {
  it('accepts only ids of the tenant grammar', () => {
    expect(assertTenantId('acme-corp')).toBe('acme-corp');
    for (const bad of ['', 'a', 'Acme', 'acme.corp', 'acme corp', 'acme>', '*', '-acme', '_meta', 'x'.repeat(64)]) {
      expect(() => assertTenantId(bad)).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    }
  });
});

describe('credential records', () => {
  const secret = { v: 1 as const, alg: 'A256GCM' as const, dataKeyId: 'dk', nonce: 'bm9uY2U', ciphertext: 'Y2lwaGVy', tag: 'dGFn' };

  it('keep exactly the envelope fields and the known metadata', () => {
    expect(cleanCredential(secret, { kind: 'bearer', scopes: ['read'] })).toEqual({ secret, metadata: { kind: 'bearer', scopes: ['read'] } });
  });

  it('name the offending field without echoing its value', () => {
    try {
      cleanCredential({ ...secret, plaintext: 'hunter2' } as typeof secret, { kind: 'bearer' });
      throw new Error('accepted');
    } catch (e) {
      expect(e).toMatchObject({ code: 'invalid_argument', extra: { fields: [{ field: 'secret.plaintext', message: 'is not an encrypted-envelope field' }] } });
      expect(JSON.stringify((e as { toWire(): unknown }).toWire())).not.toContain('hunter2');
    }
  });
});

describe('usage and audit helpers', () => {
  it('select the hours that start in [hour of from, to)', () => {
    expect(hourRange('2030-01-01T00:30:00Z', '2030-01-01T02:00:00Z')).toEqual({ lo: '2030010100', hi: '2030010102' });
    expect(hourRange('2030-01-01T00:30:00Z', '2030-01-01T02:00:01Z')).toEqual({ lo: '2030010100', hi: '2030010103' });
    expect(() => hourRange('2030-01-02T00:00:00Z', '2030-01-01T00:00:00Z')).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
  });

  it('round-trip an audit cursor and refuse a forged one', () => {
    expect(parseAuditCursor(auditCursor({ at: '2030-01-01T00:00:00.000Z', id: 'e1' }))).toEqual({ at: '2030-01-01T00:00:00.000Z', id: 'e1' });
    expect(() => parseAuditCursor('bm9wZQ')).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
  });
});

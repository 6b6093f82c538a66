import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { canonicalJson } from '#libs/contracts';
import { AUDIT_GENESIS, auditHash, sealAuditRecord, verifyAuditChain, type AuditRecord } from './chain.js';

const T = 'acme';

function chain(n: number, tenant = T): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (let i = 1; i <= n; i++) {
    out.push(sealAuditRecord({
      v: 1, tenantId: tenant, seq: i, id: `01J0000000000000000000000${i}`, at: `2026-05-01T12:00:0${i}.000Z`,
      action: i % 2 ? 'apikeys.issue' : 'tools.disable',
      actor: { kind: 'api_key', id: `key:k${i}`, roles: ['owner'] },
      target: { type: i % 2 ? 'api_key' : 'tool', id: `t${i}` },
      details: { roles: ['viewer'], n: i },
      prevHash: out[i - 2]?.hash ?? AUDIT_GENESIS,
    }));
  }
  return out;
}

const copy = (records: AuditRecord[]): AuditRecord[] => JSON.parse(JSON.stringify(records)) as AuditRecord[];

describe('the audit hash chain', () => {
  it('hashes the canonical JSON of the record without its hash, followed by prevHash', () => {
    const [first, second] = chain(2);
    const { hash, ...rest } = second;
    expect(hash).toBe(createHash('sha256').update(canonicalJson(rest) + first.hash).digest('hex'));
    expect(first.prevHash).toBe(AUDIT_GENESIS);
    expect(second.prevHash).toBe(first.hash);
    expect(auditHash(second)).toBe(hash);
  });

  it('drops undefined members before sealing, so the stored JSON hashes the same', () => {
    const r = sealAuditRecord({ v: 1, tenantId: T, seq: 1, id: 'x', at: 'now', action: 'a', actor: { kind: 'service', id: 'gateway' }, target: undefined, prevHash: AUDIT_GENESIS });
    expect('target' in r).toBe(false);
    expect(verifyAuditChain(T, [JSON.parse(JSON.stringify(r))]).ok).toBe(true);
  });

  it('reports OK with the head for an intact chain, and for an empty one', () => {
    const c = chain(6);
    expect(verifyAuditChain(T, c)).toEqual({ ok: true, count: 6, head: { seq: 6, hash: c[5].hash } });
    expect(verifyAuditChain(T, [])).toEqual({ ok: true, count: 0, head: null });
  });

  it.each([
    ['the action', (r: AuditRecord) => ({ ...r, action: 'tools.enable' })],
    ['the actor', (r: AuditRecord) => ({ ...r, actor: { ...r.actor, id: 'key:someone-else' } })],
    ['a detail', (r: AuditRecord) => ({ ...r, details: { ...r.details, roles: ['owner'] } })],
    ['the time', (r: AuditRecord) => ({ ...r, at: '2026-05-02T00:00:00.000Z' })],
    ['the target', (r: AuditRecord) => ({ ...r, target: { type: 'tool', id: 'other' } })],
  ])('names the altered record when %s of one record is changed', (_what, alter) => {
    const c = copy(chain(5));
    c[2] = alter(c[2]) as AuditRecord;
    expect(verifyAuditChain(T, c)).toMatchObject({ ok: false, index: 2, seq: 3, problem: 'altered', count: 2 });
  });

  it('names the next record when an altered record was re-hashed to hide the change', () => {
    const c = copy(chain(5));
    c[2] = sealAuditRecord({ ...c[2], details: { roles: ['owner'] } });
    const v = verifyAuditChain(T, c);
    expect(v).toMatchObject({ ok: false, index: 3, seq: 4, problem: 'broken_link' });
    expect(!v.ok && v.detail).toContain("prevHash does not match the previous record's hash");
  });

  it('names the record after a removed one', () => {
    const c = copy(chain(5));
    c.splice(2, 1);
    const v = verifyAuditChain(T, c);
    expect(v).toMatchObject({ ok: false, index: 2, seq: 4, problem: 'broken_link' });
    expect(!v.ok && v.detail).toContain('record seq 3 is missing (removed)');
  });

  it('notices that the first record was removed, and that several were', () => {
    const c = copy(chain(5));
    expect(verifyAuditChain(T, c.slice(1))).toMatchObject({ ok: false, index: 0, seq: 2, problem: 'broken_link' });
    const v = verifyAuditChain(T, [c[0], c[4]]);
    expect(!v.ok && v.detail).toContain('records seq 2..4 are missing (removed)');
  });

  it('names the first out-of-order record when two records are swapped', () => {
    const c = copy(chain(5));
    [c[1], c[2]] = [c[2], c[1]];
    const v = verifyAuditChain(T, c);
    expect(v).toMatchObject({ ok: false, index: 1, seq: 3, problem: 'broken_link' });
    expect(!v.ok && v.detail).toContain('out of order');
    const d = copy(chain(5));
    [d[0], d[4]] = [d[4], d[0]];
    expect(verifyAuditChain(T, d)).toMatchObject({ ok: false, index: 0, seq: 5, problem: 'broken_link' });
  });

  it('refuses a record of another tenant spliced into the chain, even with a valid hash', () => {
    const c = copy(chain(3));
    const foreign = chain(3, 'globex');
    c[1] = foreign[1];
    expect(verifyAuditChain(T, c)).toMatchObject({ ok: false, index: 1, problem: 'wrong_tenant' });
  });

  it('reports malformed records instead of throwing', () => {
    const c: unknown[] = copy(chain(2));
    c.push('not a record');
    expect(verifyAuditChain(T, c)).toMatchObject({ ok: false, index: 2, problem: 'malformed' });
    expect(verifyAuditChain(T, [{ ...chain(1)[0], hash: 'nope' }])).toMatchObject({ ok: false, index: 0, problem: 'malformed' });
  });
});

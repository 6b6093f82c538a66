import { createHash } from 'node:crypto';
import { canonicalJson, type JsonValue } from '#libs/contracts';

/**
 * The audit trail's hash chain. Each tenant's records form one chain on `audit.<tenant>`:
 *
 *   record.prevHash = the previous record's hash (AUDIT_GENESIS for the first)
 *   record.hash     = sha256(canonicalJson(record without hash) + record.prevHash)   (hex)
 *
 * `seq` is the record's position in the chain (1, 2, 3...) and is hashed with the rest, so an
 * altered record (any field), a removed one and two swapped ones all break the chain at a
 * specific record, which `verifyAuditChain` names. Pure: no I/O, used by the gateway, the
 * verify script (scripts/verify-audit.mjs) and the tests.
 *
 * What a hash chain cannot show on its own: records cut off at the end (the chain up to there is
 * still valid). Keep the head (`seq`, `hash`) that GET /audit returns somewhere else to detect that.
 */

/** The prevHash of a chain's first record. */
export const AUDIT_GENESIS = '0'.repeat(64);
export const AUDIT_RECORD_VERSION = 1;

/** Who did it: an API key (never the key itself), the platform admin, or a service. */
export interface AuditActor {
  readonly kind: 'api_key' | 'platform_admin' | 'service';
  /** `key:<keyId>`, `platform-admin`, or the service name. */
  readonly id: string;
  readonly roles?: readonly string[];
}

export interface AuditTarget {
  /** `api_key`, `tool`, `agent`, `budget`, `policy`, `credential`, `approval`, `tenant`... */
  readonly type: string;
  readonly id: string;
}

/** One audit record as stored (JSON) on `audit.<tenant>`. Never holds secret material. */
export interface AuditRecord {
  readonly v: number;
  readonly tenantId: string;
  /** Position in the tenant's chain, from 1. */
  readonly seq: number;
  /** Unique id (ULID); also the Nats-Msg-Id of the append. */
  readonly id: string;
  /** ISO-8601 instant of the append. */
  readonly at: string;
  /** The operation id (`apikeys.issue`, `policy.put`, `approvals.decide`...). */
  readonly action: string;
  readonly actor: AuditActor;
  readonly target?: AuditTarget;
  /** Non-secret facts about the action (roles granted, tool version and risk tier, budget limit...). */
  readonly details?: { readonly [k: string]: JsonValue };
  readonly traceId?: string;
  readonly prevHash: string;
  readonly hash: string;
}

export type UnsealedAuditRecord = Omit<AuditRecord, 'hash'>;

const HEX64 = /^[0-9a-f]{64}$/;

/** The hash of a record: sha256 over its canonical JSON without `hash`, then its prevHash. */
export function auditHash(record: UnsealedAuditRecord | AuditRecord): string {
  const { hash: _ignored, ...rest } = record as AuditRecord;
  return createHash('sha256').update(canonicalJson(rest) + record.prevHash).digest('hex');
}

/**
 * Completes a record with its hash. Undefined members are dropped first (JSON cannot store them,
 * and a member that disappears on the way to storage would change the hash).
 */
export function sealAuditRecord(record: UnsealedAuditRecord): AuditRecord {
  const plain = JSON.parse(JSON.stringify(record)) as UnsealedAuditRecord;
  return { ...plain, hash: auditHash(plain) };
}

export type AuditProblem =
  /** not an audit record at all */
  | 'malformed'
  /** a record of another tenant inside this tenant's chain */
  | 'wrong_tenant'
  /** the record's content does not match its hash: a field was changed */
  | 'altered'
  /** the record's prevHash is not the previous record's hash: records were removed or reordered */
  | 'broken_link';

export type AuditVerdict =
  | { readonly ok: true; readonly count: number; readonly head: { readonly seq: number; readonly hash: string } | null }
  | {
    readonly ok: false;
    /** Records checked before the broken one. */
    readonly count: number;
    /** Index in the input of the first broken record. */
    readonly index: number;
    readonly seq: number | null;
    readonly id: string | null;
    readonly problem: AuditProblem;
    readonly detail: string;
  };

function shapeProblem(r: unknown): string | undefined {
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return 'not an object';
  const x = r as Record<string, unknown>;
  if (!Number.isSafeInteger(x.seq) || (x.seq as number) < 1) return 'seq is not a positive integer';
  if (typeof x.tenantId !== 'string') return 'tenantId is missing';
  if (typeof x.prevHash !== 'string' || !HEX64.test(x.prevHash)) return 'prevHash is not a sha256 hex digest';
  if (typeof x.hash !== 'string' || !HEX64.test(x.hash)) return 'hash is not a sha256 hex digest';
  return undefined;
}

/**
 * Checks one tenant's chain, in stored order, and reports OK with the head, or the first broken
 * link: the record whose content no longer matches its hash (altered), or whose prevHash does
 * not name the record before it (removed or reordered records).
 */
export function verifyAuditChain(tenant: string, records: readonly unknown[]): AuditVerdict {
  let prevHash = AUDIT_GENESIS;
  let expectedSeq = 1;
  for (let i = 0; i < records.length; i++) {
    const raw = records[i];
    const shape = shapeProblem(raw);
    const seqOf = (r: unknown) => (r && typeof r === 'object' && Number.isSafeInteger((r as { seq?: unknown }).seq) ? (r as { seq: number }).seq : null);
    const idOf = (r: unknown) => (r && typeof r === 'object' && typeof (r as { id?: unknown }).id === 'string' ? (r as { id: string }).id : null);
    const broken = (problem: AuditProblem, detail: string): AuditVerdict => ({ ok: false, count: i, index: i, seq: seqOf(raw), id: idOf(raw), problem, detail });
    if (shape) return broken('malformed', `record ${i + 1} is malformed: ${shape}`);
    const r = raw as AuditRecord;
    if (r.tenantId !== tenant) return broken('wrong_tenant', `record seq ${r.seq} belongs to tenant ${r.tenantId}, not ${tenant}`);
    if (auditHash(r) !== r.hash) return broken('altered', `record seq ${r.seq} was altered: its content does not match its hash`);
    if (r.prevHash !== prevHash || r.seq !== expectedSeq) {
      let why: string;
      if (r.seq > expectedSeq) {
        const later = records.slice(i + 1).some((x) => seqOf(x) === expectedSeq);
        why = later
          ? `records are out of order: seq ${r.seq} comes where seq ${expectedSeq} belongs`
          : `record${r.seq - expectedSeq > 1 ? `s seq ${expectedSeq}..${r.seq - 1} are` : ` seq ${expectedSeq} is`} missing (removed)`;
      } else if (r.seq < expectedSeq) {
        why = `records are out of order: seq ${r.seq} comes after seq ${expectedSeq - 1}`;
      } else {
        why = "its prevHash does not match the previous record's hash";
      }
      return broken('broken_link', `the chain breaks at record seq ${r.seq}: ${why}`);
    }
    prevHash = r.hash;
    expectedSeq++;
  }
  const last = records[records.length - 1] as AuditRecord | undefined;
  return { ok: true, count: records.length, head: last ? { seq: last.seq, hash: last.hash } : null };
}

import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager, type JsMsg, type StoredMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { auditSubject, STREAMS } from '#libs/contracts';
import { AUDIT_GENESIS, verifyAuditChain, type AuditRecord, type AuditVerdict } from './chain.js';

/**
 * Reading a tenant's audit chain from AGENTMESH_AUDIT (`audit.<tenant>`). Plain functions over a
 * NATS connection: the gateway uses them, and so does scripts/verify-audit.mjs (from dist/).
 */

/** Where a chain lives; the defaults are the platform's stream and subject. Tests pass others. */
export interface AuditLocation {
  readonly stream?: string;
  readonly subject?: string;
}

/** The last record of a chain: its stream sequence, chain position and hash (GENESIS when empty). */
export interface AuditHead {
  readonly streamSeq: number;
  readonly seq: number;
  readonly hash: string;
}

export const EMPTY_HEAD: AuditHead = Object.freeze({ streamSeq: 0, seq: 0, hash: AUDIT_GENESIS });

const where = (tenant: string, loc: AuditLocation = {}) => ({ stream: loc.stream ?? STREAMS.audit.name, subject: loc.subject ?? auditSubject(tenant) });

const notFound = (e: unknown): boolean => /no message found|not found/i.test(String((e as Error)?.message ?? '')) || (e as { code?: number | string })?.code === 404 || (e as { code?: string })?.code === '404';

async function direct(jsm: JetStreamManager, stream: string, query: Parameters<JetStreamManager['direct']['getMessage']>[1]): Promise<StoredMsg | null> {
  try {
    return await jsm.direct.getMessage(stream, query);
  } catch (e) {
    if (notFound(e)) return null;
    throw e;
  }
}

const recordOf = (m: StoredMsg | JsMsg): AuditRecord => JSON.parse(new TextDecoder().decode(m.data)) as AuditRecord;

/** The head of a tenant's chain. */
export async function auditHead(jsm: JetStreamManager, tenant: string, loc?: AuditLocation): Promise<AuditHead> {
  const { stream, subject } = where(tenant, loc);
  const m = await direct(jsm, stream, { last_by_subj: subject });
  if (!m) return EMPTY_HEAD;
  const r = recordOf(m);
  return { streamSeq: m.seq, seq: r.seq, hash: r.hash };
}

/**
 * Up to `limit` records of a tenant's chain after chain position `after`, in order. The first one
 * is found by binary search over stream sequences (direct gets `next_by_subj`), so a page costs
 * O(log stream + limit) small requests whatever the chain's length.
 */
export async function readAuditPage(
  jsm: JetStreamManager, tenant: string, after: number, limit: number, loc?: AuditLocation,
): Promise<{ records: AuditRecord[]; head: AuditHead }> {
  const { stream, subject } = where(tenant, loc);
  const head = await auditHead(jsm, tenant, loc);
  if (head.seq <= after || limit <= 0) return { records: [], head };
  const next = (from: number) => direct(jsm, stream, { seq: from, next_by_subj: subject });
  let lo = 1;
  let hi = head.streamSeq;
  if (after > 0) {
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const m = await next(mid);
      if (m && recordOf(m).seq > after) hi = mid;
      else lo = mid + 1;
    }
  }
  const records: AuditRecord[] = [];
  let from = lo;
  while (records.length < limit && from <= head.streamSeq) {
    const m = await next(from);
    if (!m) break;
    const r = recordOf(m);
    if (r.seq > after) records.push(r);
    from = m.seq + 1;
  }
  return { records, head };
}

/** Every record of a tenant's chain, in stored order (an ordered consumer on the tenant's subject). */
export async function readAuditChain(nc: NatsConnection, tenant: string, loc?: AuditLocation): Promise<AuditRecord[]> {
  const jsm = await jetstreamManager(nc);
  const { stream, subject } = where(tenant, loc);
  const head = await auditHead(jsm, tenant, loc);
  if (head.streamSeq === 0) return [];
  const consumer = await jetstream(nc).consumers.get(stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume({ max_messages: 256 });
  const out: AuditRecord[] = [];
  try {
    for await (const m of messages) {
      try {
        out.push(recordOf(m));
      } catch {
        out.push({ unreadable: m.seq } as unknown as AuditRecord); // reported as malformed by the verifier
      }
      if (m.seq >= head.streamSeq) break;
    }
  } finally {
    messages.stop();
  }
  return out;
}

/** Reads and verifies a tenant's chain. */
export async function verifyTenantAudit(nc: NatsConnection, tenant: string, loc?: AuditLocation): Promise<AuditVerdict> {
  return verifyAuditChain(tenant, await readAuditChain(nc, tenant, loc));
}

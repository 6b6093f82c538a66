import { Controller, Get, Param, Query } from '@nestjs/common';
import { invalid } from '#libs/contracts';
import { Operation } from '../http/auth.js';
import { AuditSearch, auditFilters, hasAuditFilters, type AuditSearchPage } from './audit-search.service.js';
import { AuditLog } from './audit.service.js';
import type { AuditRecord } from './chain.js';

export const DEFAULT_AUDIT_LIMIT = 50;
export const MAX_AUDIT_LIMIT = 500;

function intParam(raw: unknown, name: string, min: number, max: number, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = typeof raw === 'string' && /^[0-9]{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw invalid(`${name} must be an integer from ${min} to ${max}`, [{ field: name, message: 'out of range' }]);
  return n;
}

/** A page of the audit trail as GET /audit (and gRPC Audit.ListAudit) answers it. */
export interface AuditPage {
  tenant: string;
  records: AuditRecord[];
  /** The `after` of the next page; null at the end. */
  next: number | null;
  /** The chain's last record; null while the chain is empty. */
  head: { seq: number; hash: string } | null;
}

/** The records after chain position `after`, at most `limit`, with the next page's `after` and the head. */
export async function auditPage(audit: AuditLog, tenant: string, after: number, limit: number): Promise<AuditPage> {
  const { records, head } = await audit.page(tenant, after, limit);
  const last = records[records.length - 1];
  return {
    tenant,
    records,
    next: last && last.seq < head.seq ? last.seq : null,
    head: head.seq > 0 ? { seq: head.seq, hash: head.hash } : null,
  };
}

/**
 * `GET /v1/tenants/{t}/audit?after=&limit=` (audit.get): the tenant's audit records after chain
 * position `after` (default 0: from the first), oldest first, at most `limit` (default 50, max
 * 500): `{tenant, records, next, head}`. Records are returned exactly as stored, so a client can
 * check the chain itself (`hash = sha256(canonicalJson(record without hash) + prevHash)`); `next`
 * is the `after` of the following page (null at the end); `head` is the chain's last `{seq,
 * hash}`; keeping it elsewhere lets a later check notice records cut off at the end.
 *
 * With any of `action`, `from`, `to` (ISO-8601, `from <= at < to`) or `cursor`, the answer comes
 * from the audit search read model instead (AuditSearch): `{tenant, entries, nextCursor}`, newest
 * first, `limit` as above, `cursor` = the previous page's `nextCursor` (null on the last page). Each
 * entry is `{id, seq, at, action, actor, outcome, resource?, detail?}`; `seq` is the chain position
 * of the record (`?after=<seq - 1>&limit=1` returns it as stored, to verify). `after` cannot be
 * combined with the filters (400). The read model follows the chain within moments.
 */
@Controller('v1/tenants/:t/audit')
export class AuditController {
  constructor(private readonly audit: AuditLog, private readonly search: AuditSearch) {}

  @Get()
  @Operation('audit.get')
  async list(@Param('t') t: string, @Query() q: Record<string, unknown>): Promise<AuditPage | AuditSearchPage> {
    const limit = intParam(q.limit, 'limit', 1, MAX_AUDIT_LIMIT, DEFAULT_AUDIT_LIMIT);
    const filters = auditFilters(q);
    if (hasAuditFilters(filters)) {
      if (q.after !== undefined && q.after !== '') throw invalid('after (a chain position) cannot be combined with action, from, to or cursor', [{ field: 'after', message: 'not with filters' }]);
      return this.search.search(t, filters, limit);
    }
    const after = intParam(q.after, 'after', 0, Number.MAX_SAFE_INTEGER, 0);
    return auditPage(this.audit, t, after, limit);
  }
}

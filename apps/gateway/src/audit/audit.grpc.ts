import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { invalid, unavailable } from '#libs/contracts';
import {
  fromPbTimestamp, toPbStruct, toPbTimestamp, type PbAuditRecord, type PbAuditSearchEntry, type PbListAuditRequest, type PbListAuditResponse,
} from '#libs/sdk';
import { unary, type CallContext, type CallDeps } from '../grpc/call.js';
import { auditPage, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT, type AuditPage } from './audit.controller.js';
import { auditFilters, hasAuditFilters, type AuditSearch, type AuditSearchItem, type AuditSearchPage } from './audit-search.service.js';
import type { AuditLog } from './audit.service.js';
import type { AuditRecord } from './chain.js';

/** A stored record → AuditRecord; `json` is the record itself, to verify the chain over. */
export function auditRecordToPb(r: AuditRecord): PbAuditRecord {
  return {
    v: r.v, tenant_id: r.tenantId, seq: r.seq, id: r.id, at: toPbTimestamp(r.at), action: r.action,
    actor: { kind: r.actor.kind, id: r.actor.id, roles: [...(r.actor.roles ?? [])] },
    target: r.target ? { type: r.target.type, id: r.target.id } : null,
    details: r.details ? toPbStruct(r.details) : null,
    trace_id: r.traceId ?? '', prev_hash: r.prevHash, hash: r.hash, json: JSON.stringify(r),
  };
}

export const auditPageToPb = (p: AuditPage): PbListAuditResponse => ({
  tenant: p.tenant, records: p.records.map(auditRecordToPb), next: p.next ?? 0, head: p.head,
});

const searchEntryToPb = (e: AuditSearchItem): PbAuditSearchEntry => ({
  id: e.id, seq: e.seq, at: toPbTimestamp(e.at), action: e.action, actor: e.actor, outcome: e.outcome, resource: e.resource ?? '', detail: { ...(e.detail ?? {}) },
});

export const auditSearchToPb = (p: AuditSearchPage): PbListAuditResponse => ({
  tenant: p.tenant, records: [], next: 0, head: null, entries: p.entries.map(searchEntryToPb), next_cursor: p.nextCursor ?? '',
});

/**
 * `agentmesh.v1.Audit`: REST's twin (auditPage; with action/from/to/cursor, the search), same
 * operation id and errors; `limit` follows the gRPC paging convention (0: default, clamped).
 */
export function auditService(audit: AuditLog, deps: CallDeps, method: (name: string) => string, search?: AuditSearch): UntypedServiceImplementation {
  return {
    ListAudit: unary(method('ListAudit'), deps, async (req: PbListAuditRequest, ctx: CallContext): Promise<PbListAuditResponse> => {
      await ctx.authorize('audit.get', req.tenant, undefined);
      const raw = String(req.after ?? '0');
      const after = /^[0-9]{1,16}$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(after)) throw invalid('after must be a chain position', [{ field: 'after', message: 'out of range' }]);
      const limit = Math.min(req.limit && req.limit > 0 ? req.limit : DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT);
      const filters = auditFilters({
        action: req.action, cursor: req.cursor,
        from: fromPbTimestamp(req.from) ?? undefined, to: fromPbTimestamp(req.to) ?? undefined,
      });
      if (hasAuditFilters(filters)) {
        if (after !== 0) throw invalid('after (a chain position) cannot be combined with action, from, to or cursor', [{ field: 'after', message: 'not with filters' }]);
        if (!search) throw unavailable('audit search is not available here');
        return auditSearchToPb(await search.search(req.tenant!, filters, limit));
      }
      return auditPageToPb(await auditPage(audit, req.tenant!, after, limit));
    }),
  };
}

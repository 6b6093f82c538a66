import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { invalid } from '#libs/contracts';
import { toPbStruct, toPbTimestamp, type PbAuditRecord, type PbListAuditRequest, type PbListAuditResponse } from '#libs/sdk';
import { unary, type CallContext, type CallDeps } from '../grpc/call.js';
import { auditPage, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT, type AuditPage } from './audit.controller.js';
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

/** `agentmesh.v1.Audit`: REST's twin (auditPage), same operation id and errors; `limit` follows the gRPC paging convention (0: default, clamped). */
export function auditService(audit: AuditLog, deps: CallDeps, method: (name: string) => string): UntypedServiceImplementation {
  return {
    ListAudit: unary(method('ListAudit'), deps, async (req: PbListAuditRequest, ctx: CallContext): Promise<PbListAuditResponse> => {
      await ctx.authorize('audit.get', req.tenant, undefined);
      const raw = String(req.after ?? '0');
      const after = /^[0-9]{1,16}$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(after)) throw invalid('after must be a chain position', [{ field: 'after', message: 'out of range' }]);
      const limit = Math.min(req.limit && req.limit > 0 ? req.limit : DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT);
      return auditPageToPb(await auditPage(audit, req.tenant!, after, limit));
    }),
  };
}

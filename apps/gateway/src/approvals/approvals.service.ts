import { Inject, Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  APPROVAL_STATUSES, AgentmeshError, BUCKETS, conflict, invalid, isApprovalId, notFound,
  type ApprovalRecord, type ApprovalStatus,
} from '#libs/contracts';
import { CommandBus, LOGGER, NATS, openBucket } from '#libs/messaging';
import type { Principal } from '#libs/policy';
import { KvDocuments } from '#libs/store';
import type { Logger } from '#libs/telemetry';
import { AuditLog } from '../audit/audit.service.js';
import { Authorizer } from '../http/auth.js';
import { recordApprovalDecision } from './audit-hook.js';

/**
 * An approval as REST returns it: the read model's record without the tenant and call key, the
 * decision fields null until decided.
 */
export type ApprovalView = Omit<ApprovalRecord, 'tenantId' | 'callKey' | 'decidedAt' | 'decidedBy' | 'reason'> & {
  decidedAt: string | null;
  /** API key id of the approver (null while pending, or when it expired). */
  decidedBy: string | null;
  reason: string | null;
};

export interface DecideApprovalBody {
  decision: 'approve' | 'deny';
  reason?: string;
}

export const viewOf = (r: ApprovalRecord): ApprovalView => ({
  id: r.id, runId: r.runId, step: r.step, tool: r.tool, version: r.version, args: r.args, argsHash: r.argsHash,
  riskTier: r.riskTier, status: r.status, createdAt: r.createdAt, expiresAt: r.expiresAt,
  decidedAt: r.decidedAt ?? null, decidedBy: r.decidedBy ?? null, reason: r.reason ?? null,
});

/** How long a decision request waits for the orchestrator to record it before answering 202. */
const DECISION_WAIT_MS = 10_000;

const keyIdOf = (p: Principal): string => ('subject' in p && p.subject ? p.subject.replace(/^key:/, '') : 'unknown');

/** `status` query parameter (REST) or its proto twin: absent means pending. */
export function approvalStatusParam(raw: unknown): ApprovalStatus {
  if (raw === undefined || raw === '') return 'pending';
  if (typeof raw !== 'string' || !(APPROVAL_STATUSES as readonly string[]).includes(raw)) {
    throw invalid(`status must be one of ${APPROVAL_STATUSES.join(', ')}`, [{ field: 'status', message: 'unknown status' }]);
  }
  return raw as ApprovalStatus;
}

/**
 * Human approvals of risky tool calls. Lists read the approvals read model (KV `am_approvals`,
 * kept by the orchestrator from the journal). A decision is a durable `approval.decide` command
 * (message id `approval:<id>`: one decision per approval gets through); the orchestrator folds it
 * into the run's journal, where a decision and the expiry timer race under the journal's fencing
 * and exactly one wins. The request waits for that outcome: 200 when this decision was recorded,
 * 409 when the approval expired or another decision won, 202 when the orchestrator has not
 * answered within 10 s (the command is durable and will be folded in).
 */
@Injectable()
export class ApprovalsService implements OnModuleInit {
  private docs!: KvDocuments<ApprovalRecord>;
  private bus!: CommandBus;

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    private readonly auth: Authorizer,
    @Inject(LOGGER) private readonly logger: Logger,
    /** The gateway's security audit trail; opened here when the module does not provide one. */
    @Optional() private audit?: AuditLog,
  ) {}

  async onModuleInit(): Promise<void> {
    this.docs = new KvDocuments(await openBucket(this.nc, BUCKETS.approvals));
    this.bus = new CommandBus(this.nc);
    this.audit ??= await AuditLog.open(this.nc, this.logger);
  }

  /** The tenant's approvals in a status, oldest first. */
  async list(tenantId: string, status: ApprovalStatus): Promise<ApprovalView[]> {
    const all = await this.docs.list(tenantId);
    return all
      .filter((r) => r.status === status)
      .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map(viewOf);
  }

  async get(tenantId: string, id: string): Promise<ApprovalRecord> {
    const rec = isApprovalId(id) ? await this.docs.get(tenantId, id) : null;
    if (!rec) throw notFound(`approval ${id}`);
    return rec;
  }

  /**
   * Decides a pending approval for `principal` (already allowed approvals.decide on the tenant by
   * the route guard). The policy is asked again with the approval's own risk tier.
   */
  async decide(principal: Principal, tenantId: string, id: string, body: DecideApprovalBody): Promise<{ approval: ApprovalView; recorded: boolean }> {
    const rec = await this.get(tenantId, id);
    await this.auth.authorize(principal, tenantId, 'approvals.decide', { riskTier: rec.riskTier });
    refuseClosed(rec);
    const by = keyIdOf(principal);
    const { duplicate } = await this.bus.send('approval.decide', {
      tenantId, runId: rec.runId, approvalId: rec.id, decision: body.decision, by,
      ...(body.reason !== undefined && body.reason !== '' ? { reason: body.reason } : {}),
    }, `approval:${rec.id}`);
    const final = await this.settled(tenantId, rec.id);
    if (!final) return { approval: viewOf(rec), recorded: false };
    const wanted: ApprovalStatus = body.decision === 'approve' ? 'approved' : 'denied';
    if (duplicate || final.status !== wanted || final.decidedBy !== by) refuseClosed(final, true);
    await recordApprovalDecision(this.audit, this.logger, principal, {
      tenantId, approvalId: final.id, runId: final.runId, decision: body.decision, by, tool: `${final.tool}@${final.version}`,
      argsHash: final.argsHash, riskTier: final.riskTier, at: final.decidedAt ?? new Date().toISOString(),
      ...(final.reason !== undefined ? { reason: final.reason } : {}),
    });
    return { approval: viewOf(final), recorded: true };
  }

  /** The approval once it is no longer pending, or null if the orchestrator did not record an outcome in time. */
  private async settled(tenantId: string, id: string): Promise<ApprovalRecord | null> {
    const deadline = Date.now() + DECISION_WAIT_MS;
    for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
      const r = await this.docs.get(tenantId, id);
      if (r && r.status !== 'pending') return r;
      if (Date.now() + delay > deadline) return null;
      await new Promise((res) => setTimeout(res, delay));
    }
  }
}

/** 409 for an approval that can no longer be decided: expired, or decided already. */
function refuseClosed(r: ApprovalRecord, lost = false): void {
  if (r.status === 'expired' || (r.status === 'pending' && Date.now() >= Date.parse(r.expiresAt))) {
    throw conflict(`approval ${r.id} expired at ${r.expiresAt}: it can no longer be decided`, 'approval_expired');
  }
  if (r.status !== 'pending') {
    throw conflict(`approval ${r.id} was already ${r.status}${r.decidedBy ? ` by key ${r.decidedBy}` : ''}`, 'approval_decided');
  }
  if (lost) throw new AgentmeshError('conflict', `approval ${r.id} was decided by another request`, { reason: 'approval_decided' });
}

import type { RiskTier } from '#libs/contracts';
import type { Principal } from '#libs/policy';
import type { Logger } from '#libs/telemetry';
import type { AuditLog } from '../audit/audit.service.js';

/** One recorded approval decision (no secrets: the args are referenced by their hash). */
export interface ApprovalDecisionFacts {
  tenantId: string;
  approvalId: string;
  runId: string;
  decision: 'approve' | 'deny';
  /** API key id of the approver. */
  by: string;
  /** `name@version` of the tool. */
  tool: string;
  argsHash: string;
  riskTier: RiskTier;
  reason?: string;
  /** When the decision was recorded in the run's journal. */
  at: string;
}

/**
 * AUDIT HOOK (approvals.decide): the one place where an approval decision, once recorded in the
 * run's journal, goes to the security audit trail (AuditLog.record, action `approvals.decide`,
 * target `approval/<id>`). Without an AuditLog (a gateway built without the audit module) it is a
 * structured log line (`audit: "approvals.decide"`); the decision itself is durable in the journal
 * (`approval.granted` / `approval.denied` with `by` and `reason`) either way. Never throws.
 */
export async function recordApprovalDecision(audit: AuditLog | undefined, logger: Logger, principal: Principal, facts: ApprovalDecisionFacts): Promise<void> {
  const { tenantId, approvalId, ...details } = facts;
  if (!audit) {
    logger.info({ audit: 'approvals.decide', tenantId, approvalId, ...details }, 'approval decided');
    return;
  }
  await audit.record({ tenant: tenantId, action: 'approvals.decide', actor: principal, target: { type: 'approval', id: approvalId }, details });
}

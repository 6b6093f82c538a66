import type { JsonObject, JsonValue } from '#libs/contracts';
import { enumFromRest, toPbStruct, toPbTimestamp, type PbApproval } from '#libs/sdk';
import type { ApprovalView } from './approvals.service.js';

/** `args` is a Struct in the proto: non-object arguments travel as `{value: ...}` (as event data does). */
const argsStruct = (args: JsonValue) =>
  toPbStruct(args !== null && typeof args === 'object' && !Array.isArray(args) ? (args as JsonObject) : { value: args });

/** An approval view → agentmesh.v1.Approval. */
export function approvalToPb(a: ApprovalView): PbApproval {
  return {
    id: a.id, run_id: a.runId, tool: a.tool, version: a.version, args: argsStruct(a.args),
    risk_tier: enumFromRest('RISK_TIER', a.riskTier), expires_at: toPbTimestamp(a.expiresAt),
    status: enumFromRest('APPROVAL_STATUS', a.status), created_at: toPbTimestamp(a.createdAt),
    decided_at: a.decidedAt ? toPbTimestamp(a.decidedAt) : null, reason: a.reason ?? '', decided_by: a.decidedBy ?? '',
  };
}

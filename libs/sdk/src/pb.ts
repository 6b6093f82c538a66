import type { PbStruct, PbTimestamp, PbValue } from './json-struct.js';

/**
 * Messages of `agentmesh.v1` as `@grpc/proto-loader` represents them with `protoLoaderOptions()`:
 * snake_case field names, enums as their names, 64-bit integers as decimal strings (numbers are
 * accepted when sending), oneofs with a `kind` discriminator. Every field is optional here because
 * senders may leave fields out; receivers get the proto3 defaults filled in.
 */
export type PbLong = string | number;
/** An enum value: its name, or its number when the peer sent one this side does not know. */
export type PbEnum = string | number;

export interface PbTenant { id?: string; name?: string; created_at?: PbTimestamp | null }
export interface PbApiKey {
  id?: string; tenant_id?: string; name?: string; roles?: PbEnum[];
  created_at?: PbTimestamp | null; revoked_at?: PbTimestamp | null;
}
export interface PbCreateTenantRequest { id?: string; name?: string }
export interface PbCreateTenantResponse { tenant?: PbTenant | null }
export interface PbIssueApiKeyRequest { tenant?: string; name?: string; roles?: PbEnum[] }
export interface PbIssueApiKeyResponse { api_key?: PbApiKey | null; key?: string }
export interface PbRevokeApiKeyRequest { tenant?: string; key_id?: string }
export interface PbRevokeApiKeyResponse { api_key?: PbApiKey | null }

export interface PbToolTransport {
  http?: { url?: string } | null;
  mcp?: { url?: string; tool?: string } | null;
  builtin?: { name?: string } | null;
  kind?: string;
}
export interface PbToolCredentialRef { name?: string; scopes?: string[] }
export interface PbToolVersion {
  name?: string; version?: string; description?: string; input_schema?: PbStruct | null; risk_tier?: PbEnum;
  transport?: PbToolTransport | null; egress?: string[]; timeout_ms?: number; credential?: PbToolCredentialRef | null;
  created_at?: PbTimestamp | null; digest?: string;
}
export interface PbTool { name?: string; disabled?: boolean; latest?: PbToolVersion | null }
export interface PbPutToolRequest {
  tenant?: string; name?: string; version?: string; description?: string; input_schema?: PbStruct | null;
  risk_tier?: PbEnum; transport?: PbToolTransport | null; egress?: string[]; timeout_ms?: number;
  credential?: PbToolCredentialRef | null;
}
export interface PbPutToolResponse { tool?: PbToolVersion | null; created?: boolean }
export interface PbTenantRequest { tenant?: string }
export interface PbListToolsResponse { tools?: PbTool[] }
export interface PbToolNameRequest { tenant?: string; name?: string }
export interface PbGetToolResponse { name?: string; disabled?: boolean; versions?: PbToolVersion[] }
export interface PbToolSwitchResponse { name?: string; disabled?: boolean }

export interface PbAgentLimits { max_steps?: number; budget_usd?: number; approval_timeout_seconds?: number }
export interface PbGraphStep { id?: string; tool?: string; args?: PbStruct | null }
export interface PbAgent {
  name?: string; version?: string; planner?: string; model?: string; instructions?: string; tools?: string[];
  limits?: PbAgentLimits | null; steps?: PbGraphStep[]; output?: PbValue | null; created_at?: PbTimestamp | null; digest?: string;
}
export interface PbPutAgentRequest {
  tenant?: string; name?: string; version?: string; planner?: string; model?: string; instructions?: string;
  tools?: string[]; limits?: PbAgentLimits | null; steps?: PbGraphStep[]; output?: PbValue | null;
}
export interface PbPutAgentResponse { agent?: PbAgent | null; created?: boolean }
export interface PbGetAgentRequest { tenant?: string; name?: string; version?: string }
export interface PbGetAgentResponse { agent?: PbAgent | null }
export interface PbListAgentsResponse { agents?: PbAgent[] }

export interface PbCost { usd?: number; input_tokens?: PbLong; output_tokens?: PbLong }
export interface PbRun {
  id?: string; agent?: string; session_id?: string; status?: PbEnum; output?: PbValue | null;
  error?: { code?: string; message?: string } | null; steps?: number; cost?: PbCost | null;
  created_at?: PbTimestamp | null; updated_at?: PbTimestamp | null;
}
export interface PbStartRunRequest {
  tenant?: string; agent?: string; input?: PbValue | null; session_id?: string; metadata?: Record<string, string>;
}
export interface PbStartRunResponse { run?: PbRun | null; created?: boolean }
export interface PbRunRequest { tenant?: string; run_id?: string }
export interface PbGetRunResponse { run?: PbRun | null }
export interface PbListRunsRequest { tenant?: string; status?: PbEnum; agent?: string; limit?: number; cursor?: string }
export interface PbListRunsResponse { runs?: PbRun[]; next_cursor?: string }
export interface PbCancelRunRequest { tenant?: string; run_id?: string; reason?: string }
export interface PbCancelRunResponse { run?: PbRun | null }
export interface PbWatchRunRequest { tenant?: string; run_id?: string; after_seq?: PbLong }
export interface PbRunEvent {
  seq?: PbLong; run_id?: string; tenant_id?: string; type?: string; at?: PbTimestamp | null; step?: number; data?: PbStruct | null;
}

export interface PbApproval {
  id?: string; run_id?: string; tool?: string; version?: string; args?: PbStruct | null; risk_tier?: PbEnum;
  expires_at?: PbTimestamp | null; status?: PbEnum; created_at?: PbTimestamp | null; decided_at?: PbTimestamp | null;
  reason?: string; decided_by?: string;
}
export interface PbListApprovalsRequest { tenant?: string; status?: PbEnum }
export interface PbListApprovalsResponse { approvals?: PbApproval[] }
export interface PbDecideApprovalRequest { tenant?: string; approval_id?: string; decision?: PbEnum; reason?: string }
export interface PbDecideApprovalResponse { approval?: PbApproval | null }

export interface PbCredential {
  name?: string; kind?: PbEnum; allowed_tools?: string[]; scopes?: string[];
  created_at?: PbTimestamp | null; updated_at?: PbTimestamp | null;
}
export interface PbPutCredentialRequest {
  tenant?: string; name?: string; kind?: PbEnum; secret?: string;
  oauth2_client_credentials?: { token_url?: string; client_id?: string; client_secret?: string } | null;
  allowed_tools?: string[]; scopes?: string[];
}
export interface PbPutCredentialResponse { credential?: PbCredential | null; created?: boolean }
export interface PbListCredentialsResponse { credentials?: PbCredential[] }

export interface PbBudgetLine { limit_usd?: number | null; spent_usd?: number; reserved_usd?: number; remaining_usd?: number | null }
export interface PbBudget {
  limit_usd?: number | null; period?: PbEnum; spent_usd?: number; reserved_usd?: number; remaining_usd?: number | null;
  state?: PbEnum; period_start?: PbTimestamp | null; period_end?: PbTimestamp | null; agents?: Record<string, PbBudgetLine>;
  updated_at?: PbTimestamp | null; tenant_id?: string;
}
export interface PbGetBudgetResponse { budget?: PbBudget | null }
export interface PbPutBudgetRequest {
  tenant?: string; limit_usd?: number | null; period?: PbEnum; agents?: Record<string, { limit_usd?: number | null }>;
}
export interface PbPutBudgetResponse { budget?: PbBudget | null }
export interface PbGetUsageRequest { tenant?: string; from?: PbTimestamp | null; to?: PbTimestamp | null; group_by?: PbEnum }
export interface PbUsageRow { key?: string; cost?: PbCost | null; count?: PbLong }
export interface PbGetUsageResponse {
  from?: PbTimestamp | null; to?: PbTimestamp | null; rows?: PbUsageRow[]; total?: PbCost | null; total_calls?: PbLong; group_by?: PbEnum;
}

export interface PbRevokeCredentialRequest { tenant?: string; name?: string }
export interface PbRevokeCredentialResponse { name?: string }

export interface PbAuditRecord {
  v?: number; tenant_id?: string; seq?: PbLong; id?: string; at?: PbTimestamp | null; action?: string;
  actor?: { kind?: string; id?: string; roles?: string[] } | null; target?: { type?: string; id?: string } | null;
  details?: PbStruct | null; trace_id?: string; prev_hash?: string; hash?: string; json?: string;
}
export interface PbListAuditRequest {
  tenant?: string; after?: PbLong; limit?: number; action?: string; from?: PbTimestamp | null; to?: PbTimestamp | null; cursor?: string;
}
export interface PbAuditSearchEntry {
  id?: string; seq?: PbLong; at?: PbTimestamp | null; action?: string; actor?: string; outcome?: string; resource?: string; detail?: Record<string, string>;
}
export interface PbListAuditResponse {
  tenant?: string; records?: PbAuditRecord[]; next?: PbLong; head?: { seq?: PbLong; hash?: string } | null;
  entries?: PbAuditSearchEntry[]; next_cursor?: string;
}

export interface PbPolicyRule {
  kind?: PbEnum; subject?: string; operation?: string; access?: PbEnum; when?: string; effect?: PbEnum; role?: string;
}
export interface PbPolicy { tenant?: string; revision?: PbLong; rules?: PbPolicyRule[]; builtin?: PbPolicyRule[] }
export interface PbGetPolicyResponse { policy?: PbPolicy | null }
export interface PbPutPolicyRequest { tenant?: string; rules?: PbPolicyRule[]; revision?: PbLong | null }
export interface PbPutPolicyResponse { policy?: PbPolicy | null }

export interface PbSessionRun {
  run_id?: string; agent?: string; agent_version?: string; status?: PbEnum; input?: string | null; output?: string | null;
  error?: { code?: string; message?: string } | null; created_at?: PbTimestamp | null; ended_at?: PbTimestamp | null;
}
export interface PbSession {
  session_id?: string; tenant_id?: string; created_at?: PbTimestamp | null; updated_at?: PbTimestamp | null;
  expires_at?: PbTimestamp | null; runs?: PbSessionRun[];
}
export interface PbGetSessionRequest { tenant?: string; session_id?: string }
export interface PbGetSessionResponse { session?: PbSession | null }

/** proto enum name ↔ REST lowercase string, e.g. `RUN_STATUS_WAITING_APPROVAL` ↔ `waiting_approval`. */
export function enumToRest(prefix: string, v: PbEnum | null | undefined): string | undefined {
  if (typeof v !== 'string' || !v.startsWith(`${prefix}_`) || v === `${prefix}_UNSPECIFIED`) return undefined;
  return v.slice(prefix.length + 1).toLowerCase();
}
export function enumFromRest(prefix: string, v: string | null | undefined): string {
  return v ? `${prefix}_${v.toUpperCase()}` : `${prefix}_UNSPECIFIED`;
}

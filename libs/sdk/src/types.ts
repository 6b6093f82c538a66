import type { JsonObject, JsonValue } from '#libs/contracts';

/**
 * What the SDK hands to and returns from callers: the REST shapes (camelCase, lowercase enum
 * strings, ISO-8601 instants, plain JSON), whatever the wire looks like.
 */
export type Role = 'owner' | 'developer' | 'operator' | 'approver' | 'viewer';
export type RiskTier = 'read' | 'write' | 'irreversible';
export type RunStatus = 'queued' | 'running' | 'waiting_approval' | 'completed' | 'failed' | 'cancelled';

export interface Tenant { id: string; name: string; createdAt: string }
export interface ApiKey { id: string; tenantId: string; name: string; roles: Role[]; createdAt: string; revokedAt: string | null }

export type ToolTransport =
  | { kind: 'http'; url: string }
  | { kind: 'mcp'; url: string; tool: string }
  | { kind: 'builtin'; name: string };

/** A tool version as registered (REST PUT /tools/{name} body). */
export interface ToolDefinitionInput {
  version: string;
  description?: string;
  inputSchema: JsonObject;
  riskTier: RiskTier;
  transport: ToolTransport;
  egress?: string[];
  timeoutMs?: number;
  credential?: { name: string; scopes?: string[] };
}
export interface ToolVersion {
  name: string; version: string; description: string; inputSchema: JsonObject; riskTier: RiskTier;
  transport: ToolTransport; egress: string[]; timeoutMs: number; credential: { name: string; scopes: string[] } | null;
  createdAt: string; digest: string;
}
export interface Tool { name: string; disabled: boolean; latest: ToolVersion | null }

export interface AgentLimits { maxSteps?: number; budgetUsd?: number; approvalTimeoutSeconds?: number }
export interface GraphStep { id: string; tool: string; args?: JsonObject }
/** An agent version as defined (REST PUT /agents/{name} body). */
export interface AgentDefinitionInput {
  version: string;
  planner: string;
  model?: string;
  instructions?: string;
  tools?: string[];
  limits?: AgentLimits;
  steps?: GraphStep[];
  output?: JsonValue;
}
export interface Agent {
  name: string; version: string; planner: string; model: string; instructions: string; tools: string[];
  /** 0 means the platform default (no per-run limit for budgetUsd). */
  limits: Required<AgentLimits>;
  steps: GraphStep[];
  output?: JsonValue;
  createdAt: string; digest: string;
}

export interface Cost { usd: number; inputTokens: number; outputTokens: number }
export interface Run {
  id: string;
  /** The pinned agent version the run executes, `name@version`. */
  agent: string;
  sessionId: string | null;
  status: RunStatus;
  output: JsonValue | null;
  error: { code: string; message: string } | null;
  steps: number;
  /** null in ListRuns pages (the run index has no cost; GetRun has it). */
  cost: Cost | null;
  createdAt: string;
  updatedAt: string;
}
export interface RunEvent { seq: number; runId: string; tenantId: string; type: string; at: string; step: number; data: JsonObject }

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired';
export interface Approval {
  id: string; runId: string; tool: string; version: string; args: JsonObject; riskTier: RiskTier | null; expiresAt: string | null;
  status: ApprovalStatus | null; createdAt: string | null; decidedAt: string | null; reason: string; decidedBy: string;
}
export type CredentialKind = 'api_key' | 'bearer' | 'oauth2_client_credentials';
export interface CredentialInput {
  kind: CredentialKind;
  /** For api_key and bearer. */
  secret?: string;
  oauth2ClientCredentials?: { tokenUrl: string; clientId: string; clientSecret: string };
  allowedTools?: string[];
  scopes?: string[];
}
export interface Credential { name: string; kind: CredentialKind | null; allowedTools: string[]; scopes: string[]; createdAt: string | null; updatedAt: string | null }
export type BudgetPeriod = 'day' | 'month';
export type BudgetState = 'ok' | 'low' | 'exhausted';
/** Limit, spending and what is left of one budget; `null` limit: no limit. */
export interface BudgetLine { limitUsd: number | null; spentUsd: number; reservedUsd: number; remainingUsd: number | null }
/** The tenant's budget, as REST GET /budget shows it. */
export interface Budget extends BudgetLine {
  tenantId: string;
  period: BudgetPeriod | null;
  state: BudgetState | null;
  periodStart: string | null;
  periodEnd: string | null;
  agents: Record<string, BudgetLine>;
  updatedAt: string | null;
}
/** What PUT /budget takes: `limitUsd: null` means no limit; 0 stops all spending. */
export interface BudgetSettingsInput {
  limitUsd: number | null;
  period: BudgetPeriod;
  agents?: Record<string, { limitUsd: number | null }>;
}
export type UsageGroupBy = 'agent' | 'model' | 'tool';
export interface Usage {
  from: string | null; to: string | null; groupBy: UsageGroupBy | null;
  /** REST `groups`: one row per group, by cost descending; empty without groupBy. */
  rows: Array<{ key: string; cost: Cost; count: number }>;
  /** REST `totals` (usd and tokens); `totalCalls` is `totals.calls`. */
  total: Cost;
  totalCalls: number;
}

/** One audit record as stored (REST GET /audit `records`); `json` is the stored JSON to verify the chain over. */
export interface AuditRecord {
  v: number; tenantId: string; seq: number; id: string; at: string; action: string;
  actor: { kind: string; id: string; roles?: string[] };
  target?: { type: string; id: string };
  details?: JsonObject;
  traceId?: string;
  prevHash: string; hash: string;
  json: string;
}
export interface AuditPage { tenant: string; records: AuditRecord[]; next: number | null; head: { seq: number; hash: string } | null }
/** One entry of an audit search (REST GET /audit?action=&from=&to=&cursor= `entries`); `seq` is its chain position. */
export interface AuditSearchEntry {
  id: string; seq: number; at: string; action: string; actor: string; outcome: string; resource?: string; detail?: Record<string, string>;
}
export interface AuditSearchPage { tenant: string; entries: AuditSearchEntry[]; nextCursor: string | null }

export type PolicyRule =
  | { kind: 'permission'; subject: string; operation: string; access?: 'read' | 'write' | '*'; when?: string; effect: 'allow' | 'deny' }
  | { kind: 'role'; subject: string; role: string };
export interface Policy { tenant: string; revision: number; rules: PolicyRule[]; builtin: PolicyRule[] }

export interface SessionRun {
  runId: string; agent: string; agentVersion: string; status: RunStatus; input: string | null; output: string | null;
  error: { code: string; message: string } | null; createdAt: string | null; endedAt: string | null;
}
export interface Session { sessionId: string; tenantId: string; createdAt: string | null; updatedAt: string | null; expiresAt: string | null; runs: SessionRun[] }

/** Per-call options. */
export interface CallOptions {
  /** Deadline in milliseconds from now (default: the client's `timeoutMs`; none for watchRun). */
  timeoutMs?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
  /** Extra request metadata. */
  metadata?: Record<string, string>;
}

export type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'UNKNOWN' | 'SERVICE_UNKNOWN';

import type { JsonObject } from '#libs/contracts';
import { fromPbStruct, fromPbTimestamp, fromPbValue, toPbStruct, toPbValue } from './json-struct.js';
import {
  enumFromRest, enumToRest, type PbAgent, type PbApiKey, type PbApproval, type PbAuditRecord, type PbBudget, type PbBudgetLine, type PbCost,
  type PbCredential, type PbGetUsageResponse, type PbListAuditResponse, type PbLong, type PbPolicy, type PbPolicyRule, type PbPutAgentRequest,
  type PbPutToolRequest, type PbRun, type PbRunEvent, type PbSession, type PbTenant, type PbTool, type PbToolTransport, type PbToolVersion,
} from './pb.js';
import type {
  Agent, AgentDefinitionInput, ApiKey, Approval, ApprovalStatus, AuditPage, AuditRecord, AuditSearchPage, Budget, BudgetLine, BudgetPeriod, BudgetState,
  Cost, Credential, CredentialKind, Policy, PolicyRule, RiskTier, Role, Run, RunEvent, RunStatus, Session, Tenant, Tool,
  ToolDefinitionInput, ToolTransport, ToolVersion, Usage, UsageGroupBy,
} from './types.js';

/** The SDK's side of the mapping: REST-shaped inputs → proto requests, proto responses → REST-shaped values. */

const num = (v: PbLong | null | undefined): number => (v === null || v === undefined ? 0 : Number(v));
const ts = fromPbTimestamp;
const tsRequired = (v: Parameters<typeof fromPbTimestamp>[0]): string => fromPbTimestamp(v) ?? '';

export const tenantFromPb = (t: PbTenant | null | undefined): Tenant => ({ id: t?.id ?? '', name: t?.name ?? '', createdAt: tsRequired(t?.created_at) });

export const apiKeyFromPb = (k: PbApiKey | null | undefined): ApiKey => ({
  id: k?.id ?? '', tenantId: k?.tenant_id ?? '', name: k?.name ?? '',
  roles: (k?.roles ?? []).map((r) => enumToRest('ROLE', r)).filter((r): r is Role => r !== undefined),
  createdAt: tsRequired(k?.created_at), revokedAt: ts(k?.revoked_at),
});

export function transportToPb(t: ToolTransport | undefined): PbToolTransport | null {
  if (!t) return null;
  switch (t.kind) {
    case 'http': return { http: { url: t.url } };
    case 'mcp': return { mcp: { url: t.url, tool: t.tool } };
    case 'builtin': return { builtin: { name: t.name } };
    default: return null;
  }
}

function transportFromPb(t: PbToolTransport | null | undefined): ToolTransport {
  if (t?.http) return { kind: 'http', url: t.http.url ?? '' };
  if (t?.mcp) return { kind: 'mcp', url: t.mcp.url ?? '', tool: t.mcp.tool ?? '' };
  return { kind: 'builtin', name: t?.builtin?.name ?? '' };
}

export function putToolToPb(tenant: string, name: string, d: ToolDefinitionInput): PbPutToolRequest {
  return {
    tenant, name, version: d.version, description: d.description ?? '',
    input_schema: d.inputSchema === undefined ? null : toPbStruct(d.inputSchema),
    risk_tier: enumFromRest('RISK_TIER', d.riskTier), transport: transportToPb(d.transport),
    egress: d.egress ?? [], timeout_ms: d.timeoutMs ?? 0,
    credential: d.credential ? { name: d.credential.name, scopes: d.credential.scopes ?? [] } : null,
  };
}

export const toolVersionFromPb = (t: PbToolVersion | null | undefined): ToolVersion => ({
  name: t?.name ?? '', version: t?.version ?? '', description: t?.description ?? '',
  inputSchema: fromPbStruct(t?.input_schema) ?? {}, riskTier: (enumToRest('RISK_TIER', t?.risk_tier) ?? 'read') as RiskTier,
  transport: transportFromPb(t?.transport), egress: t?.egress ?? [], timeoutMs: t?.timeout_ms ?? 0,
  credential: t?.credential ? { name: t.credential.name ?? '', scopes: t.credential.scopes ?? [] } : null,
  createdAt: tsRequired(t?.created_at), digest: t?.digest ?? '',
});

export const toolFromPb = (t: PbTool): Tool => ({ name: t.name ?? '', disabled: t.disabled ?? false, latest: t.latest ? toolVersionFromPb(t.latest) : null });

export function putAgentToPb(tenant: string, name: string, d: AgentDefinitionInput): PbPutAgentRequest {
  return {
    tenant, name, version: d.version, planner: d.planner, model: d.model ?? '', instructions: d.instructions ?? '',
    tools: d.tools ?? [],
    limits: d.limits ? { max_steps: d.limits.maxSteps ?? 0, budget_usd: d.limits.budgetUsd ?? 0, approval_timeout_seconds: d.limits.approvalTimeoutSeconds ?? 0 } : null,
    steps: (d.steps ?? []).map((s) => ({ id: s.id, tool: s.tool, args: s.args === undefined ? null : toPbStruct(s.args) })),
    output: d.output === undefined ? null : toPbValue(d.output),
  };
}

export function agentFromPb(a: PbAgent | null | undefined): Agent {
  const output = fromPbValue(a?.output);
  return {
    name: a?.name ?? '', version: a?.version ?? '', planner: a?.planner ?? '', model: a?.model ?? '', instructions: a?.instructions ?? '',
    tools: a?.tools ?? [],
    limits: { maxSteps: a?.limits?.max_steps ?? 0, budgetUsd: a?.limits?.budget_usd ?? 0, approvalTimeoutSeconds: a?.limits?.approval_timeout_seconds ?? 0 },
    steps: (a?.steps ?? []).map((s) => {
      const args = fromPbStruct(s.args);
      return { id: s.id ?? '', tool: s.tool ?? '', ...(args !== undefined ? { args } : {}) };
    }),
    ...(output !== undefined ? { output } : {}),
    createdAt: tsRequired(a?.created_at), digest: a?.digest ?? '',
  };
}

export const costFromPb = (c: PbCost | null | undefined): Cost => ({ usd: c?.usd ?? 0, inputTokens: num(c?.input_tokens), outputTokens: num(c?.output_tokens) });

export function runFromPb(r: PbRun | null | undefined): Run {
  return {
    id: r?.id ?? '', agent: r?.agent ?? '', sessionId: r?.session_id ? r.session_id : null,
    status: (enumToRest('RUN_STATUS', r?.status) ?? 'queued') as RunStatus,
    output: fromPbValue(r?.output) ?? null,
    error: r?.error ? { code: r.error.code ?? '', message: r.error.message ?? '' } : null,
    steps: r?.steps ?? 0, cost: r?.cost ? costFromPb(r.cost) : null,
    createdAt: tsRequired(r?.created_at), updatedAt: tsRequired(r?.updated_at),
  };
}

export const eventFromPb = (e: PbRunEvent): RunEvent => ({
  seq: num(e.seq), runId: e.run_id ?? '', tenantId: e.tenant_id ?? '', type: e.type ?? '', at: tsRequired(e.at), step: e.step ?? 0,
  data: fromPbStruct(e.data) ?? ({} as JsonObject),
});

export const approvalFromPb = (a: PbApproval): Approval => ({
  id: a.id ?? '', runId: a.run_id ?? '', tool: a.tool ?? '', version: a.version ?? '', args: fromPbStruct(a.args) ?? {},
  riskTier: (enumToRest('RISK_TIER', a.risk_tier) ?? null) as RiskTier | null, expiresAt: ts(a.expires_at),
  status: (enumToRest('APPROVAL_STATUS', a.status) ?? null) as ApprovalStatus | null,
  createdAt: ts(a.created_at), decidedAt: ts(a.decided_at), reason: a.reason ?? '', decidedBy: a.decided_by ?? '',
});

export const credentialFromPb = (c: PbCredential | null | undefined): Credential => ({
  name: c?.name ?? '', kind: (enumToRest('CREDENTIAL_KIND', c?.kind) ?? null) as CredentialKind | null,
  allowedTools: c?.allowed_tools ?? [], scopes: c?.scopes ?? [], createdAt: ts(c?.created_at), updatedAt: ts(c?.updated_at),
});

const optNum = (v: number | null | undefined): number | null => (typeof v === 'number' ? v : null);

export const budgetLineFromPb = (b: PbBudgetLine | null | undefined): BudgetLine => ({
  limitUsd: optNum(b?.limit_usd), spentUsd: b?.spent_usd ?? 0, reservedUsd: b?.reserved_usd ?? 0, remainingUsd: optNum(b?.remaining_usd),
});

export const budgetFromPb = (b: PbBudget | null | undefined): Budget => ({
  tenantId: b?.tenant_id ?? '',
  ...budgetLineFromPb(b),
  period: (enumToRest('BUDGET_PERIOD', b?.period) ?? null) as BudgetPeriod | null,
  state: (enumToRest('BUDGET_STATE', b?.state) ?? null) as BudgetState | null,
  periodStart: ts(b?.period_start), periodEnd: ts(b?.period_end),
  agents: Object.fromEntries(Object.entries(b?.agents ?? {}).map(([k, v]) => [k, budgetLineFromPb(v)])),
  updatedAt: ts(b?.updated_at),
});

export const usageFromPb = (r: PbGetUsageResponse): Usage => ({
  from: ts(r.from), to: ts(r.to), groupBy: (enumToRest('USAGE_GROUP_BY', r.group_by) ?? null) as UsageGroupBy | null,
  rows: (r.rows ?? []).map((x) => ({ key: x.key ?? '', cost: costFromPb(x.cost), count: num(x.count) })),
  total: costFromPb(r.total), totalCalls: num(r.total_calls),
});

export function auditRecordFromPb(r: PbAuditRecord): AuditRecord {
  const details = fromPbStruct(r.details);
  return {
    v: r.v ?? 0, tenantId: r.tenant_id ?? '', seq: num(r.seq), id: r.id ?? '', at: tsRequired(r.at), action: r.action ?? '',
    actor: { kind: r.actor?.kind ?? '', id: r.actor?.id ?? '', ...(r.actor?.roles?.length ? { roles: r.actor.roles } : {}) },
    ...(r.target ? { target: { type: r.target.type ?? '', id: r.target.id ?? '' } } : {}),
    ...(details !== undefined ? { details } : {}),
    ...(r.trace_id ? { traceId: r.trace_id } : {}),
    prevHash: r.prev_hash ?? '', hash: r.hash ?? '', json: r.json ?? '',
  };
}

export const auditSearchFromPb = (r: PbListAuditResponse): AuditSearchPage => ({
  tenant: r.tenant ?? '',
  entries: (r.entries ?? []).map((e) => ({
    id: e.id ?? '', seq: num(e.seq), at: fromPbTimestamp(e.at) ?? '', action: e.action ?? '', actor: e.actor ?? '', outcome: e.outcome ?? '',
    ...(e.resource ? { resource: e.resource } : {}),
    ...(e.detail && Object.keys(e.detail).length ? { detail: { ...e.detail } } : {}),
  })),
  nextCursor: r.next_cursor ? r.next_cursor : null,
});

export const auditPageFromPb = (r: PbListAuditResponse): AuditPage => ({
  tenant: r.tenant ?? '', records: (r.records ?? []).map(auditRecordFromPb),
  next: num(r.next) > 0 ? num(r.next) : null,
  head: r.head ? { seq: num(r.head.seq), hash: r.head.hash ?? '' } : null,
});

export function policyRuleToPb(r: PolicyRule): PbPolicyRule {
  if (r.kind === 'role') return { kind: 'POLICY_RULE_KIND_ROLE', subject: r.subject, role: r.role };
  return {
    kind: enumFromRest('POLICY_RULE_KIND', r.kind), subject: r.subject, operation: r.operation,
    access: r.access === '*' ? 'POLICY_ACCESS_ANY' : enumFromRest('POLICY_ACCESS', r.access), when: r.when ?? '',
    effect: enumFromRest('POLICY_EFFECT', r.effect),
  };
}

export function policyRuleFromPb(r: PbPolicyRule): PolicyRule {
  if (enumToRest('POLICY_RULE_KIND', r.kind) === 'role') return { kind: 'role', subject: r.subject ?? '', role: r.role ?? '' };
  const access = enumToRest('POLICY_ACCESS', r.access);
  return {
    kind: 'permission', subject: r.subject ?? '', operation: r.operation ?? '',
    ...(access ? { access: (access === 'any' ? '*' : access) as 'read' | 'write' | '*' } : {}),
    ...(r.when ? { when: r.when } : {}),
    effect: (enumToRest('POLICY_EFFECT', r.effect) ?? 'allow') as 'allow' | 'deny',
  };
}

export const policyFromPb = (p: PbPolicy | null | undefined): Policy => ({
  tenant: p?.tenant ?? '', revision: num(p?.revision), rules: (p?.rules ?? []).map(policyRuleFromPb), builtin: (p?.builtin ?? []).map(policyRuleFromPb),
});

export const sessionFromPb = (s: PbSession | null | undefined): Session => ({
  sessionId: s?.session_id ?? '', tenantId: s?.tenant_id ?? '',
  createdAt: ts(s?.created_at), updatedAt: ts(s?.updated_at), expiresAt: ts(s?.expires_at),
  runs: (s?.runs ?? []).map((r) => ({
    runId: r.run_id ?? '', agent: r.agent ?? '', agentVersion: r.agent_version ?? '',
    status: (enumToRest('RUN_STATUS', r.status) ?? 'queued') as RunStatus,
    input: typeof r.input === 'string' ? r.input : null, output: typeof r.output === 'string' ? r.output : null,
    error: r.error ? { code: r.error.code ?? '', message: r.error.message ?? '' } : null,
    createdAt: ts(r.created_at), endedAt: ts(r.ended_at),
  })),
});

export { num as longToNumber };

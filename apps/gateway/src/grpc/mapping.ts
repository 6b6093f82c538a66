import {
  invalid, type AgentRecord, type AnyJournalEvent, type JsonObject, type JsonValue, type RunSummary, type ToolRecord,
} from '#libs/contracts';
import {
  enumFromRest, fromPbStruct, fromPbValue, JsonConversionError, toPbStruct, toPbTimestamp, toPbValue,
  type PbAgent, type PbApiKey, type PbEnum, type PbPutAgentRequest, type PbPutToolRequest, type PbRun,
  type PbRunEvent, type PbStartRunRequest, type PbStruct, type PbTenant, type PbToolVersion, type PbValue,
} from '#libs/sdk';
import type { RunView } from '../runs/runs.service.js';
import type { ApiKeyRecord, Tenant } from '../tenants/keys.service.js';

/**
 * Proto messages ↔ the REST bodies and views the gateway's services use. Requests become the very
 * body REST would receive (camelCase, optional members left out when empty), so that the same JSON
 * Schemas validate them, the same digests make "identical body" decisions, and the same errors
 * name the fields. Responses are built from the same views REST returns.
 */

/** Drops members whose value is undefined, so absent proto3 fields are absent REST members. */
export function compact<T extends Record<string, unknown>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** proto3 cannot tell an empty string from an unset one: both are "not given". */
export const given = (s: string | null | undefined): string | undefined => (s ? s : undefined);
const positive = (n: number | null | undefined): number | undefined => (typeof n === 'number' && n > 0 ? n : undefined);

/**
 * A proto enum → its REST string: `undefined` for the zero value; names of the enum lowercased
 * without the prefix; anything else (a number the server does not know, another enum's name)
 * kept as a string the JSON Schema will reject, naming the field.
 */
export function restEnum(prefix: string, v: PbEnum | null | undefined): string | undefined {
  if (v === undefined || v === null || v === 0 || v === '' || v === `${prefix}_UNSPECIFIED`) return undefined;
  if (typeof v === 'string' && v.startsWith(`${prefix}_`)) return v.slice(prefix.length + 1).toLowerCase();
  return String(v);
}

/** Free-form JSON in a request, or a 400 naming the field when it cannot be JSON. */
function json<T>(field: string, convert: () => T): T {
  try {
    return convert();
  } catch (e) {
    if (e instanceof JsonConversionError) throw invalid(`${field}: ${e.message}`, [{ field, message: e.message }]);
    throw e;
  }
}
const structField = (field: string, s: PbStruct | null | undefined): JsonObject | undefined => json(field, () => fromPbStruct(s));
const valueField = (field: string, v: PbValue | null | undefined): JsonValue | undefined => json(field, () => fromPbValue(v));

// ---- tenants and keys

export const tenantToPb = (t: Tenant): PbTenant => ({ id: t.id, name: t.name, created_at: toPbTimestamp(t.createdAt) });

/** Key metadata; the hash (and the key) never leave through here. */
export const apiKeyToPb = (k: ApiKeyRecord): PbApiKey => ({
  id: k.id, tenant_id: k.tenantId, name: k.name, roles: k.roles.map((r) => enumFromRest('ROLE', r)),
  created_at: toPbTimestamp(k.createdAt), revoked_at: k.revokedAt ? toPbTimestamp(k.revokedAt) : null,
});

/** IssueApiKey roles: duplicates are ignored (proto), unknown values reach the schema as they are. */
export function rolesFromPb(roles: readonly PbEnum[] | undefined): string[] {
  return [...new Set((roles ?? []).map((r) => restEnum('ROLE', r) ?? String(r)))];
}

// ---- tools

/** PutToolRequest → the REST body of PUT /v1/tenants/{t}/tools/{name}. */
export function toolBodyFromPb(req: PbPutToolRequest): Record<string, unknown> {
  const t = req.transport;
  let transport: Record<string, unknown> | undefined;
  if (t?.http) transport = compact({ kind: 'http', url: given(t.http.url) });
  else if (t?.mcp) transport = compact({ kind: 'mcp', url: given(t.mcp.url), tool: given(t.mcp.tool) });
  else if (t?.builtin) transport = compact({ kind: 'builtin', name: given(t.builtin.name) });
  const cred = req.credential;
  return compact({
    version: given(req.version),
    description: given(req.description),
    inputSchema: structField('/inputSchema', req.input_schema),
    riskTier: restEnum('RISK_TIER', req.risk_tier),
    transport,
    egress: req.egress?.length ? req.egress : undefined,
    timeoutMs: positive(req.timeout_ms),
    credential: cred ? compact({ name: given(cred.name), scopes: cred.scopes?.length ? cred.scopes : undefined }) : undefined,
  });
}

export function toolVersionToPb(t: ToolRecord): PbToolVersion {
  const tr = t.transport;
  const transport = tr.kind === 'http' ? { http: { url: tr.url } } : tr.kind === 'mcp' ? { mcp: { url: tr.url, tool: tr.tool } } : { builtin: { name: tr.name } };
  return {
    name: t.name, version: t.version, description: t.description ?? '', input_schema: toPbStruct(t.inputSchema ?? {}),
    risk_tier: enumFromRest('RISK_TIER', t.riskTier), transport, egress: t.egress ?? [], timeout_ms: t.timeoutMs ?? 0,
    credential: t.credential ? { name: t.credential.name, scopes: t.credential.scopes ?? [] } : null,
    created_at: toPbTimestamp(t.createdAt), digest: t.digest,
  };
}

// ---- agents

/** PutAgentRequest → the REST body of PUT /v1/tenants/{t}/agents/{name}. */
export function agentBodyFromPb(req: PbPutAgentRequest): Record<string, unknown> {
  const l = req.limits;
  const limits = l ? compact({ maxSteps: positive(l.max_steps), budgetUsd: positive(l.budget_usd), approvalTimeoutSeconds: positive(l.approval_timeout_seconds) }) : undefined;
  const steps = (req.steps ?? []).map((s, i) => compact({ id: given(s.id), tool: given(s.tool), args: structField(`/steps/${i}/args`, s.args) }));
  return compact({
    version: given(req.version),
    planner: given(req.planner),
    model: given(req.model),
    instructions: given(req.instructions),
    tools: req.tools?.length ? req.tools : undefined,
    limits: limits && Object.keys(limits).length ? limits : undefined,
    // a graph agent needs its steps (the schema says so when they are missing); others have none
    steps: steps.length || req.planner === 'graph' ? steps : undefined,
    output: valueField('/output', req.output),
  });
}

export function agentToPb(a: AgentRecord): PbAgent {
  return {
    name: a.name, version: a.version, planner: a.planner, model: a.model ?? '', instructions: a.instructions ?? '',
    tools: a.tools ?? [],
    limits: { max_steps: a.limits?.maxSteps ?? 0, budget_usd: a.limits?.budgetUsd ?? 0, approval_timeout_seconds: a.limits?.approvalTimeoutSeconds ?? 0 },
    steps: (a.steps ?? []).map((s) => ({ id: s.id, tool: s.tool, args: s.args === undefined ? null : toPbStruct(s.args) })),
    output: a.output === undefined ? null : toPbValue(a.output),
    created_at: toPbTimestamp(a.createdAt), digest: a.digest,
  };
}

// ---- runs

/** StartRunRequest → the REST body of POST /v1/tenants/{t}/runs (the idempotency digest is taken over it). */
export function startRunBodyFromPb(req: PbStartRunRequest): Record<string, unknown> {
  return compact({
    agent: given(req.agent),
    input: valueField('/input', req.input),
    sessionId: given(req.session_id),
    metadata: req.metadata && Object.keys(req.metadata).length ? req.metadata : undefined,
  });
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/**
 * A run view → Run. `agent` is the pinned `name@version` the run executes (REST has it as
 * `agent` + `agentVersion`; the proto has one field, and the pinned form is the one that never
 * changes meaning). `output` is set for completed runs only, `error` for failed ones.
 */
export function runToPb(v: RunView): PbRun {
  return {
    id: v.id, agent: `${v.agent}@${v.agentVersion}`, session_id: v.sessionId ?? '',
    status: enumFromRest('RUN_STATUS', v.status),
    output: v.status === 'completed' ? toPbValue(v.output ?? null) : null,
    error: v.status === 'failed' && v.error ? { code: v.error.code, message: v.error.message } : null,
    steps: v.steps,
    cost: { usd: v.cost.usd, input_tokens: v.cost.inputTokens, output_tokens: v.cost.outputTokens },
    created_at: toPbTimestamp(v.createdAt), updated_at: toPbTimestamp(v.updatedAt),
  };
}

/** A row of the run index (ListRuns): no output and no cost, as in REST. */
export function runSummaryToPb(s: RunSummary): PbRun {
  return {
    id: s.id, agent: `${s.agent}@${s.agentVersion}`, session_id: s.sessionId ?? '',
    status: enumFromRest('RUN_STATUS', s.status), output: null,
    error: s.status === 'failed' && s.error ? { code: s.error.code, message: s.error.message } : null,
    steps: s.steps, cost: null, created_at: toPbTimestamp(s.createdAt), updated_at: toPbTimestamp(s.updatedAt),
  };
}

export const isTerminalStatus = (s: string): boolean => TERMINAL.has(s);

export function eventToPb(e: AnyJournalEvent): PbRunEvent {
  const data = e.data as unknown;
  return {
    seq: e.seq, run_id: e.runId, tenant_id: e.tenantId, type: e.type, at: toPbTimestamp(e.at), step: e.step,
    data: toPbStruct(data && typeof data === 'object' && !Array.isArray(data) ? (data as JsonObject) : { value: (data ?? null) as JsonValue }),
  };
}

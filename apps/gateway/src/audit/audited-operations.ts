import type { JsonValue } from '#libs/contracts';
import type { AuditTarget } from './chain.js';

/**
 * Which successful operations go to the audit trail, and what each record says. Details are
 * picked field by field from what the operation returned (metadata) or from its route; nothing is
 * copied wholesale, so no key, secret or credential material can slip into a record.
 *
 * Recorded elsewhere: `policy.put` (TenantPolicyApi, for REST and gRPC, with the revision and the rules) and
 * `approvals.decide` (ApprovalsService, once the decision is in the run's journal).
 */
export interface AuditFacts {
  readonly tenant: string;
  readonly action: string;
  readonly target?: AuditTarget;
  readonly details?: { readonly [k: string]: JsonValue | undefined };
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const strs = (v: unknown): string[] | undefined => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const bool = (v: unknown): boolean | undefined => (typeof v === 'boolean' ? v : undefined);
/** Lower-case REST form of a proto enum value (`RISK_TIER_WRITE` → `write`). */
const pbEnum = (prefix: string, v: unknown): string | undefined => {
  if (typeof v !== 'string' || v === `${prefix}_UNSPECIFIED`) return undefined;
  return v.startsWith(`${prefix}_`) ? v.slice(prefix.length + 1).toLowerCase() : v;
};

/** The REST request and response an audited operation ran with. */
export interface RestExchange {
  readonly method: string;
  readonly params: Readonly<Record<string, string | undefined>>;
  readonly body: unknown;
  readonly status: number;
  readonly result: unknown;
}

/** Audit facts of a successful REST operation, or undefined when it is not audited. */
export function restAuditFacts(op: string, x: RestExchange): AuditFacts | undefined {
  const t = x.params.t ?? '';
  const res = obj(x.result);
  const body = obj(x.body);
  switch (op) {
    case 'tenants.create': {
      const id = str(res.id);
      return id ? { tenant: id, action: op, target: { type: 'tenant', id }, details: { name: str(res.name) } } : undefined;
    }
    case 'apikeys.issue':
      return { tenant: t, action: op, target: { type: 'api_key', id: str(res.id) ?? '' }, details: { roles: strs(res.roles), name: str(res.name) } };
    case 'apikeys.revoke':
      return { tenant: t, action: op, target: { type: 'api_key', id: x.params.id ?? '' } };
    case 'tools.put':
      if (x.status !== 201) return undefined; // the same version again: nothing changed
      return {
        tenant: t, action: op, target: { type: 'tool', id: `${x.params.name}@${str(res.version) ?? ''}` },
        details: { version: str(res.version), riskTier: str(res.riskTier), transport: str(obj(res.transport).kind), egress: strs(res.egress), digest: str(res.digest) },
      };
    case 'tools.disable':
    case 'tools.enable':
      return { tenant: t, action: op, target: { type: 'tool', id: x.params.name ?? '' }, details: { disabled: bool(res.disabled) } };
    case 'agents.put':
      if (x.status !== 201) return undefined;
      return {
        tenant: t, action: op, target: { type: 'agent', id: `${x.params.name}@${str(res.version) ?? ''}` },
        details: { version: str(res.version), planner: str(res.planner), model: str(res.model), tools: strs(res.tools), digest: str(res.digest) },
      };
    case 'budget.put':
      return {
        tenant: t, action: op, target: { type: 'budget', id: t },
        details: { limitUsd: num(body.limitUsd) ?? (body.limitUsd === null ? null : undefined), period: str(body.period), agents: body.agents === undefined ? undefined : (JSON.parse(JSON.stringify(obj(body.agents))) as JsonValue) },
      };
    case 'credentials.put':
      // PUT stores (metadata comes back), DELETE revokes; the material never leaves the request
      if (x.method === 'DELETE') return { tenant: t, action: 'credentials.revoke', target: { type: 'credential', id: x.params.name ?? '' } };
      return {
        tenant: t, action: op, target: { type: 'credential', id: x.params.name ?? '' },
        details: { kind: str(res.kind), allowedTools: strs(res.allowedTools), scopes: strs(res.scopes), created: x.status === 201 },
      };
    default:
      return undefined;
  }
}

/** The gRPC methods grpcAuditFacts knows. */
export const AUDITED_GRPC_PATHS: ReadonlySet<string> = new Set([
  '/agentmesh.v1.Tenants/CreateTenant', '/agentmesh.v1.Tenants/IssueApiKey', '/agentmesh.v1.Tenants/RevokeApiKey',
  '/agentmesh.v1.Tools/PutTool', '/agentmesh.v1.Tools/DisableTool', '/agentmesh.v1.Tools/EnableTool',
  '/agentmesh.v1.Agents/PutAgent', '/agentmesh.v1.Credentials/PutCredential', '/agentmesh.v1.Credentials/RevokeCredential',
  '/agentmesh.v1.Budgets/PutBudget',
]);

/** Audit facts of a successful gRPC call (`/agentmesh.v1.Service/Method`), or undefined. */
export function grpcAuditFacts(path: string, request: unknown, response: unknown): AuditFacts | undefined {
  const req = obj(request);
  const res = obj(response);
  const t = str(req.tenant) ?? '';
  switch (path) {
    case '/agentmesh.v1.Tenants/CreateTenant': {
      const tenant = obj(res.tenant);
      const id = str(tenant.id);
      return id ? { tenant: id, action: 'tenants.create', target: { type: 'tenant', id }, details: { name: str(tenant.name) } } : undefined;
    }
    case '/agentmesh.v1.Tenants/IssueApiKey': {
      const k = obj(res.api_key);
      return { tenant: t, action: 'apikeys.issue', target: { type: 'api_key', id: str(k.id) ?? '' }, details: { roles: strs(k.roles)?.map((r) => pbEnum('ROLE', r) ?? r), name: str(k.name) } };
    }
    case '/agentmesh.v1.Tenants/RevokeApiKey':
      return { tenant: t, action: 'apikeys.revoke', target: { type: 'api_key', id: str(req.key_id) ?? '' } };
    case '/agentmesh.v1.Tools/PutTool': {
      if (res.created !== true) return undefined;
      const tool = obj(res.tool);
      return {
        tenant: t, action: 'tools.put', target: { type: 'tool', id: `${str(req.name) ?? ''}@${str(tool.version) ?? ''}` },
        details: { version: str(tool.version), riskTier: pbEnum('RISK_TIER', tool.risk_tier), transport: Object.keys(obj(tool.transport))[0], egress: strs(tool.egress), digest: str(tool.digest) },
      };
    }
    case '/agentmesh.v1.Tools/DisableTool':
    case '/agentmesh.v1.Tools/EnableTool':
      return { tenant: t, action: path.endsWith('DisableTool') ? 'tools.disable' : 'tools.enable', target: { type: 'tool', id: str(req.name) ?? '' }, details: { disabled: bool(res.disabled) } };
    case '/agentmesh.v1.Agents/PutAgent': {
      if (res.created !== true) return undefined;
      const a = obj(res.agent);
      return {
        tenant: t, action: 'agents.put', target: { type: 'agent', id: `${str(req.name) ?? ''}@${str(a.version) ?? ''}` },
        details: { version: str(a.version), planner: str(a.planner), model: str(a.model) || undefined, tools: strs(a.tools), digest: str(a.digest) },
      };
    }
    case '/agentmesh.v1.Credentials/PutCredential': {
      const c = obj(res.credential);
      return {
        tenant: t, action: 'credentials.put', target: { type: 'credential', id: str(req.name) ?? '' },
        details: { kind: pbEnum('CREDENTIAL_KIND', c.kind), allowedTools: strs(c.allowed_tools), scopes: strs(c.scopes), created: bool(res.created) },
      };
    }
    case '/agentmesh.v1.Credentials/RevokeCredential':
      return { tenant: t, action: 'credentials.revoke', target: { type: 'credential', id: str(req.name) ?? '' } };
    case '/agentmesh.v1.Budgets/PutBudget': {
      // as REST records its body: an unset limit is `null` (no limit); agents' caps likewise
      const agents = Object.entries(obj(req.agents));
      return {
        tenant: t, action: 'budget.put', target: { type: 'budget', id: t },
        details: {
          limitUsd: num(req.limit_usd) ?? null, period: pbEnum('BUDGET_PERIOD', req.period) ?? str(req.period),
          agents: agents.length ? Object.fromEntries(agents.map(([name, a]) => [name, { limitUsd: num(obj(a).limit_usd) ?? null }])) : undefined,
        },
      };
    }
    default:
      return undefined;
  }
}

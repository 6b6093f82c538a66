/**
 * The operation catalogue: every operation of the public API (REST and gRPC expose the same set),
 * what it touches, whether it reads or writes, who may call it by default and which request
 * attributes the policy needs to decide it. The gateway's REST and gRPC layers map each route or
 * method to one `OperationId` and ask the policy about that id; the table-driven policy spec walks
 * the same list.
 */

/** The roles a tenant API key can carry (API.md). */
export const TENANT_ROLES = ['owner', 'developer', 'operator', 'approver', 'viewer'] as const;
export type TenantRole = (typeof TENANT_ROLES)[number];
export const isTenantRole = (s: unknown): s is TenantRole =>
  typeof s === 'string' && (TENANT_ROLES as readonly string[]).includes(s);

/** `read` operations never change state; every tenant role may perform them by default. */
export type Access = 'read' | 'write';

/**
 * `tenant`: performed inside one tenant's domain by that tenant's keys.
 * `platform`: performed only by the platform admin, never by a tenant key whatever its roles.
 */
export type OperationScope = 'tenant' | 'platform';

/** Attributes the policy conditions can test (see `condition.ts`). */
export const BUDGET_STATES = ['ok', 'low', 'exhausted'] as const;
export type BudgetState = (typeof BUDGET_STATES)[number];

export interface OperationSpec {
  readonly id: string;
  readonly resource: string;
  readonly access: Access;
  readonly scope: OperationScope;
  /**
   * REST route (prefix `/v1`). The gRPC layer maps its methods to the same ids. Absent for the
   * operations the services decide internally (`tools.run`): they have no route and no gRPC twin.
   */
  readonly http?: { readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE'; readonly path: string };
  /** Tenant roles granted this operation by the default policy (the platform admin aside). */
  readonly roles: readonly TenantRole[];
  /** Whether the platform admin key may perform it. */
  readonly platformAdmin: boolean;
  /**
   * Attributes the caller must supply; `can()` denies (fail closed) when one is missing, so a
   * forgotten budget lookup cannot switch a deny rule off.
   */
  readonly requiredAttributes: readonly PolicyAttributeName[];
  /** Attributes the caller should supply when it knows them (e.g. the highest risk tier in play). */
  readonly optionalAttributes: readonly PolicyAttributeName[];
  readonly summary: string;
}

/** Attribute names with a known meaning; conditions may test other names as well. */
export const POLICY_ATTRIBUTE_NAMES = ['riskTier', 'budgetState', 'tool'] as const;
export type PolicyAttributeName = (typeof POLICY_ATTRIBUTE_NAMES)[number];

const ALL: readonly TenantRole[] = TENANT_ROLES;
const OWNER: readonly TenantRole[] = ['owner'];
const DEV: readonly TenantRole[] = ['owner', 'developer'];
const OPS: readonly TenantRole[] = ['owner', 'operator'];
const APPROVE: readonly TenantRole[] = ['owner', 'approver'];

type Def = Omit<OperationSpec, 'id' | 'resource' | 'requiredAttributes' | 'optionalAttributes' | 'platformAdmin'> &
  Partial<Pick<OperationSpec, 'requiredAttributes' | 'optionalAttributes' | 'platformAdmin'>>;

const T = '/tenants/{t}';

const DEFS = {
  'tenants.create': { access: 'write', scope: 'platform', http: { method: 'POST', path: '/tenants' }, roles: [], platformAdmin: true, summary: 'create a tenant' },
  'apikeys.issue': { access: 'write', scope: 'tenant', http: { method: 'POST', path: `${T}/api-keys` }, roles: OWNER, platformAdmin: true, summary: 'issue an API key (shown once)' },
  'apikeys.revoke': { access: 'write', scope: 'tenant', http: { method: 'DELETE', path: `${T}/api-keys/{id}` }, roles: OWNER, platformAdmin: true, summary: 'revoke an API key' },
  'tools.put': { access: 'write', scope: 'tenant', http: { method: 'PUT', path: `${T}/tools/{name}` }, roles: DEV, requiredAttributes: ['riskTier'], summary: 'register a tool version' },
  'tools.list': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/tools` }, roles: ALL, summary: 'list tools' },
  'tools.get': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/tools/{name}` }, roles: ALL, summary: "one tool's versions" },
  'tools.disable': { access: 'write', scope: 'tenant', http: { method: 'POST', path: `${T}/tools/{name}/disable` }, roles: DEV, optionalAttributes: ['riskTier'], summary: 'kill switch: disable a tool' },
  'tools.enable': { access: 'write', scope: 'tenant', http: { method: 'POST', path: `${T}/tools/{name}/enable` }, roles: DEV, optionalAttributes: ['riskTier'], summary: 'enable a tool again' },
  'agents.put': { access: 'write', scope: 'tenant', http: { method: 'PUT', path: `${T}/agents/{name}` }, roles: DEV, optionalAttributes: ['riskTier'], summary: 'define an agent version' },
  'agents.get': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/agents/{name}` }, roles: ALL, summary: 'one agent' },
  'agents.list': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/agents` }, roles: ALL, summary: 'list agents' },
  'runs.start': { access: 'write', scope: 'tenant', http: { method: 'POST', path: `${T}/runs` }, roles: OPS, requiredAttributes: ['budgetState'], optionalAttributes: ['riskTier'], summary: 'start a run' },
  'runs.get': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/runs/{id}` }, roles: ALL, summary: 'one run' },
  'runs.list': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/runs` }, roles: ALL, summary: 'list runs' },
  'runs.events': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/runs/{id}/events` }, roles: ALL, summary: "a run's journal as SSE" },
  'runs.cancel': { access: 'write', scope: 'tenant', http: { method: 'POST', path: `${T}/runs/{id}/cancel` }, roles: OPS, summary: 'cancel a run' },
  'approvals.list': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/approvals` }, roles: ALL, summary: 'list approvals' },
  'approvals.decide': { access: 'write', scope: 'tenant', http: { method: 'POST', path: `${T}/approvals/{id}` }, roles: APPROVE, requiredAttributes: ['riskTier'], summary: 'approve or deny a pending tool call' },
  'credentials.put': { access: 'write', scope: 'tenant', http: { method: 'PUT', path: `${T}/credentials/{name}` }, roles: DEV, summary: 'store a secret' },
  'credentials.list': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/credentials` }, roles: ALL, summary: 'credential metadata (never material)' },
  'budget.get': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/budget` }, roles: ALL, summary: 'the budget, spent and reserved' },
  'budget.put': { access: 'write', scope: 'tenant', http: { method: 'PUT', path: `${T}/budget` }, roles: OPS, summary: 'set the budget' },
  'usage.get': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/usage` }, roles: ALL, summary: 'metered usage' },
  'audit.get': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/audit` }, roles: ALL, summary: 'audit trail' },
  'policy.get': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/policy` }, roles: ALL, summary: "the tenant's policy rules" },
  'policy.put': { access: 'write', scope: 'tenant', http: { method: 'PUT', path: `${T}/policy` }, roles: OWNER, summary: "replace the tenant's policy rules" },
  'sessions.get': { access: 'read', scope: 'tenant', http: { method: 'GET', path: `${T}/sessions/{id}` }, roles: ALL, summary: "a session's runs, in order" },
  // internal (no route): the orchestrator asks it once per pinned tool when a run starts, as subject
  // `agent:<name>`; a refusal means the tool's calls in that run wait for an approval
  'tools.run': { access: 'write', scope: 'tenant', roles: ALL, requiredAttributes: ['riskTier'], optionalAttributes: ['tool'], summary: "a run's call of a tool runs unattended (else it waits for an approval)" },
} as const satisfies Record<string, Def>;

export type OperationId = keyof typeof DEFS;

function build(id: OperationId, d: Def): OperationSpec {
  return Object.freeze({
    id,
    resource: id.slice(0, id.indexOf('.')),
    access: d.access,
    scope: d.scope,
    ...(d.http ? { http: Object.freeze({ ...d.http }) } : {}),
    roles: Object.freeze([...d.roles]),
    platformAdmin: d.platformAdmin ?? false,
    requiredAttributes: Object.freeze([...(d.requiredAttributes ?? [])]),
    optionalAttributes: Object.freeze([...(d.optionalAttributes ?? [])]),
    summary: d.summary,
  });
}

/** Every operation, keyed by id. */
export const OPERATIONS: Readonly<Record<OperationId, OperationSpec>> = Object.freeze(
  Object.fromEntries(
    (Object.entries(DEFS) as [OperationId, Def][]).map(([id, d]) => [id, build(id, d)]),
  ) as Record<OperationId, OperationSpec>,
);

/** Every operation id, in catalogue order. */
export const OPERATION_IDS: readonly OperationId[] = Object.freeze(Object.keys(DEFS) as OperationId[]);

/** The resource prefixes (`tools`, `runs`...) that rules may name as `<resource>.*`. */
export const RESOURCES: readonly string[] = Object.freeze([...new Set(OPERATION_IDS.map((id) => OPERATIONS[id].resource))]);

/** The operations of the public API: those with a REST route (and a gRPC twin), in catalogue order. */
export const ROUTED_OPERATION_IDS: readonly OperationId[] = Object.freeze(OPERATION_IDS.filter((id) => OPERATIONS[id].http !== undefined));

export const isOperationId = (s: unknown): s is OperationId =>
  typeof s === 'string' && Object.prototype.hasOwnProperty.call(DEFS, s);

export function getOperation(id: OperationId): OperationSpec;
export function getOperation(id: string): OperationSpec | undefined;
export function getOperation(id: string): OperationSpec | undefined {
  return isOperationId(id) ? OPERATIONS[id] : undefined;
}

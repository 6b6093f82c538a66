import { newEnforcer, newModelFromString, type Adapter, type Enforcer, type Model } from 'casbin';
import { compileCondition, type Attributes } from './condition.js';

/**
 * The Casbin model: RBAC with domains (a domain is a tenant) plus attribute conditions, with
 * explicit deny beating allow.
 *
 * Request `r = sub, dom, obj, act, attrs`:
 *   sub   `{ id, tenant }`: the subject (a role name such as `developer`, or a principal id such as
 *         `key:01J...` that has role assignments), and the tenant the credential belongs to.
 *   dom   the tenant whose resources the request touches.
 *   obj   the operation id (`runs.start`).
 *   act   the operation's access class (`read` | `write`).
 *   attrs the request attributes (`{ riskTier, budgetState, ... }`).
 *
 * Policy `p = sub, dom, obj, act, cond, eft`:
 *   sub   a role, a principal id, or `*` (any subject)
 *   dom   a tenant id, or `*` (every tenant: the built-in defaults; never the platform domain)
 *   obj   an operation id, `<resource>.*` or `*` (keyMatch)
 *   act   `read`, `write` or `*`
 *   cond  an attribute condition (condition.ts), `*` for none
 *   eft   `allow` | `deny`
 *
 * Role links `g = subject, role, tenant` (roles are per tenant).
 *
 * The matcher first requires the credential's tenant to equal the requested domain, so a key of
 * tenant A is never granted anything in tenant B, whatever rule or role link exists in B.
 * Conditions are evaluated by the registered `condMatch` function rather than eval(): a rule whose
 * condition cannot be parsed fails closed (a deny fires, an allow grants nothing).
 */
export const POLICY_MODEL = `
[request_definition]
r = sub, dom, obj, act, attrs

[policy_definition]
p = sub, dom, obj, act, cond, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.sub.tenant == r.dom && domMatch(r.dom, p.dom) && (p.sub == "*" || g(r.sub.id, p.sub, r.dom)) && keyMatch(r.obj, p.obj) && (p.act == "*" || p.act == r.act) && condMatch(r.attrs, p.cond, p.eft)
`;

/**
 * The platform admin's domain. It is not a valid tenant id (tenant ids are `[a-z0-9-]`), the
 * tenant enforcer never holds a rule for it, and `*` in a tenant rule's domain never matches it.
 */
export const PLATFORM_DOMAIN = '*platform*';
/** The subject id of the platform admin key inside the platform domain. */
export const PLATFORM_ADMIN = 'platform-admin';
/** `*`: any subject, any tenant domain, any operation, any access, no condition. */
export const ANY = '*';

/** A Casbin policy row without its ptype: `p` rows have 6 fields, `g` rows 3. */
export type PolicyRow = readonly string[];
export interface PolicyRows {
  readonly p: readonly PolicyRow[];
  readonly g: readonly PolicyRow[];
}

/**
 * The built-in tenant policy, applied in every tenant domain (`*`). Tenants add rules of their own
 * on top (their own domain only): deny rules always beat these grants.
 */
export const DEFAULT_TENANT_POLICY: readonly PolicyRow[] = Object.freeze([
  // owner: everything in its tenant (platform-scope operations never reach the tenant enforcer)
  ['owner', '*', '*', '*', '*', 'allow'],
  // developer: tools, agents, credentials
  ['developer', '*', 'tools.*', '*', '*', 'allow'],
  ['developer', '*', 'agents.*', '*', '*', 'allow'],
  ['developer', '*', 'credentials.*', '*', '*', 'allow'],
  // operator: runs (start, cancel), budgets
  ['operator', '*', 'runs.*', '*', '*', 'allow'],
  ['operator', '*', 'budget.*', '*', '*', 'allow'],
  // approver: approval decisions
  ['approver', '*', 'approvals.decide', '*', '*', 'allow'],
  // every role reads (credential reads return metadata only; no operation returns material)
  ['developer', '*', '*', 'read', '*', 'allow'],
  ['operator', '*', '*', 'read', '*', 'allow'],
  ['approver', '*', '*', 'read', '*', 'allow'],
  ['viewer', '*', '*', 'read', '*', 'allow'],
  // kill switch: no new run while the tenant's budget is exhausted, whoever asks
  ['*', '*', 'runs.start', '*', 'budgetState=exhausted', 'deny'],
  // runs call read and write tools unattended (the orchestrator asks as `agent:<name>`); a tenant
  // deny rule on tools.run makes those calls wait for an approval; irreversible ones always do
  ['*', '*', 'tools.run', '*', 'riskTier=read|write', 'allow'],
]);

/** The platform admin's grants; kept in its own enforcer, not editable through tenant rules. */
export const PLATFORM_POLICY: readonly PolicyRow[] = Object.freeze([
  [PLATFORM_ADMIN, PLATFORM_DOMAIN, 'tenants.create', '*', '*', 'allow'],
  [PLATFORM_ADMIN, PLATFORM_DOMAIN, 'apikeys.*', '*', '*', 'allow'],
]);

/** `*` in a rule's domain matches any tenant but never the platform domain. */
export function domMatch(requestDomain: string, policyDomain: string): boolean {
  if (policyDomain === ANY) return requestDomain !== PLATFORM_DOMAIN && requestDomain !== ANY;
  return requestDomain === policyDomain;
}

/** Evaluates a rule's condition; an unparsable condition fails closed. */
export function condMatch(attrs: unknown, condition: string, effect: string): boolean {
  try {
    const a = (attrs !== null && typeof attrs === 'object' ? attrs : {}) as Attributes;
    return compileCondition(condition)(a);
  } catch {
    return effect === 'deny';
  }
}

/** A Casbin adapter over an in-memory snapshot of rows; the enforcer never writes through it. */
class SnapshotAdapter implements Adapter {
  constructor(private readonly rows: PolicyRows) {}
  async loadPolicy(model: Model): Promise<void> {
    for (const row of this.rows.p) model.addPolicy('p', 'p', [...row]);
    for (const row of this.rows.g) model.addPolicy('g', 'g', [...row]);
  }
  async savePolicy(): Promise<boolean> {
    return false;
  }
  async addPolicy(): Promise<void> {}
  async removePolicy(): Promise<void> {}
  async removeFilteredPolicy(): Promise<void> {}
}

/**
 * Builds a ready enforcer over a fixed snapshot of rows. Reloads build a new enforcer and swap it
 * in, so a decision never sees a half-loaded policy (Casbin's loadPolicy clears in place).
 */
export async function buildEnforcer(rows: PolicyRows): Promise<Enforcer> {
  const enforcer = await newEnforcer(newModelFromString(POLICY_MODEL), new SnapshotAdapter(rows));
  await enforcer.addFunction('domMatch', domMatch);
  await enforcer.addFunction('condMatch', condMatch);
  enforcer.enableAutoSave(false);
  return enforcer;
}

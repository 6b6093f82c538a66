import { digestOf, policyBodySchema, SchemaValidator, type JsonValue } from '#libs/contracts';
import { DEFAULT_TENANT_POLICY, type Principal, type TenantRule } from '#libs/policy';
import type { AuditLog } from '../audit/audit.service.js';
import type { GatewayPolicy } from './gateway-policy.js';

const v = new SchemaValidator();

/** A built-in rule in the shape of a tenant permission rule. */
export interface BuiltinRule {
  kind: 'permission';
  subject: string;
  operation: string;
  access: string;
  when: string;
  effect: string;
}

/** The built-in rules every tenant starts from, in the shape of tenant rules (read only). */
export const BUILTIN_RULES: readonly BuiltinRule[] = DEFAULT_TENANT_POLICY.map(([subject, , operation, access, when, effect]) => ({
  kind: 'permission', subject, operation, access, when, effect,
}));

/** What GET and PUT /policy answer. */
export interface PolicyView {
  tenant: string;
  revision: number;
  rules: TenantRule[];
  builtin: readonly BuiltinRule[];
}

/**
 * `policy.get` and `policy.put` of a tenant, shared by REST (PolicyController) and gRPC
 * (agentmesh.v1.Policies): the body is validated with the same schema, the rules replaced with
 * compare-and-set on `revision`, and the change recorded in the audit trail.
 */
export class TenantPolicyApi {
  constructor(private readonly policy: GatewayPolicy, private readonly audit: AuditLog) {}

  async get(tenant: string): Promise<PolicyView> {
    const stored = await this.policy.service.storedTenantPolicy(tenant);
    return { tenant, revision: stored.revision, rules: [...stored.rules], builtin: BUILTIN_RULES };
  }

  /** Replaces the rules with the REST body `{rules, revision?}`; 400 naming the field, 409 `policy_conflict`. */
  async put(tenant: string, body: unknown, principal: Principal): Promise<PolicyView> {
    const b = v.assert<{ rules: TenantRule[]; revision?: number }>('policy-body', policyBodySchema, body, 'policy');
    const revision = await this.policy.service.replaceTenantRules(tenant, b.rules, b.revision !== undefined ? { expectedRevision: b.revision } : {});
    const stored = await this.policy.service.storedTenantPolicy(tenant);
    await this.audit.record({
      tenant, action: 'policy.put', actor: principal, target: { type: 'policy', id: tenant },
      details: { revision, count: stored.rules.length, digest: digestOf(stored.rules), rules: JSON.parse(JSON.stringify(stored.rules)) as JsonValue },
    });
    return { tenant, revision, rules: [...stored.rules], builtin: BUILTIN_RULES };
  }
}

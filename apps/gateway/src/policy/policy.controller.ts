import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { digestOf, policyBodySchema, SchemaValidator, type JsonValue } from '#libs/contracts';
import { DEFAULT_TENANT_POLICY, type Principal, type TenantRule } from '#libs/policy';
import { AuditLog } from '../audit/audit.service.js';
import { CurrentPrincipal, Operation } from '../http/auth.js';
import { GatewayPolicy } from './gateway-policy.js';

const v = new SchemaValidator();

/** The built-in rules every tenant starts from, in the shape of tenant rules (read only). */
const BUILTIN = DEFAULT_TENANT_POLICY.map(([subject, , operation, access, when, effect]) => ({ kind: 'permission', subject, operation, access, when, effect }));

/**
 * A tenant's own policy rules (libs/policy rules.ts), on top of the built-in defaults:
 *
 * `GET /v1/tenants/{t}/policy` (policy.get): `{tenant, revision, rules, builtin}`.
 * `PUT /v1/tenants/{t}/policy` (policy.put, owner): `{rules, revision?}` replaces the rules; with
 * `revision` only if nobody changed them since (409 `policy_conflict` otherwise). Rules are
 * `{kind: "permission", subject, operation, access?, when?, effect}` (explicit deny beats allow;
 * `when` is an attribute condition such as `riskTier=irreversible` or `budgetState!=ok`) and
 * `{kind: "role", subject, role}`. They apply in this tenant only, and can never name platform
 * operations. Every instance applies the change within a second; the change is audited.
 */
@Controller('v1/tenants/:t/policy')
export class PolicyController {
  constructor(private readonly policy: GatewayPolicy, private readonly audit: AuditLog) {}

  @Get()
  @Operation('policy.get')
  async get(@Param('t') t: string) {
    const stored = await this.policy.service.storedTenantPolicy(t);
    return { tenant: t, revision: stored.revision, rules: stored.rules, builtin: BUILTIN };
  }

  @Put()
  @Operation('policy.put')
  async put(@Param('t') t: string, @Body() body: unknown, @CurrentPrincipal() principal: Principal) {
    const b = v.assert<{ rules: TenantRule[]; revision?: number }>('policy-body', policyBodySchema, body, 'policy');
    const revision = await this.policy.service.replaceTenantRules(t, b.rules, b.revision !== undefined ? { expectedRevision: b.revision } : {});
    const stored = await this.policy.service.storedTenantPolicy(t);
    await this.audit.record({
      tenant: t, action: 'policy.put', actor: principal, target: { type: 'policy', id: t },
      details: { revision, count: stored.rules.length, digest: digestOf(stored.rules), rules: JSON.parse(JSON.stringify(stored.rules)) as JsonValue },
    });
    return { tenant: t, revision, rules: stored.rules, builtin: BUILTIN };
  }
}

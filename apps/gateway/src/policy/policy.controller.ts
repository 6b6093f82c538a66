import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import type { Principal } from '#libs/policy';
import { AuditLog } from '../audit/audit.service.js';
import { CurrentPrincipal, Operation } from '../http/auth.js';
import { GatewayPolicy } from './gateway-policy.js';
import { TenantPolicyApi } from './policy.api.js';

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
 * The work is TenantPolicyApi's, shared with the gRPC Policies service.
 */
@Controller('v1/tenants/:t/policy')
export class PolicyController {
  private readonly api: TenantPolicyApi;
  constructor(policy: GatewayPolicy, audit: AuditLog) {
    this.api = new TenantPolicyApi(policy, audit);
  }

  @Get()
  @Operation('policy.get')
  get(@Param('t') t: string) {
    return this.api.get(t);
  }

  @Put()
  @Operation('policy.put')
  put(@Param('t') t: string, @Body() body: unknown, @CurrentPrincipal() principal: Principal) {
    return this.api.put(t, body, principal);
  }
}

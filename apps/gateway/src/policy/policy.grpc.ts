import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { invalid } from '#libs/contracts';
import type { TenantRule } from '#libs/policy';
import {
  enumFromRest, type PbGetPolicyResponse, type PbPolicy, type PbPolicyRule, type PbPutPolicyRequest, type PbPutPolicyResponse, type PbTenantRequest,
} from '#libs/sdk';
import { unary, type CallContext, type CallDeps } from '../grpc/call.js';
import { compact, given, restEnum } from '../grpc/mapping.js';
import type { BuiltinRule, PolicyView, TenantPolicyApi } from './policy.api.js';

/**
 * A PolicyRule → the REST rule object. Only the fields the caller set are passed on, whatever the
 * kind, so the policy schema refuses what REST refuses (a role rule with an effect, say) and names
 * the same field.
 */
export function ruleFromPb(r: PbPolicyRule): Record<string, unknown> {
  const access = restEnum('POLICY_ACCESS', r.access);
  return compact({
    kind: restEnum('POLICY_RULE_KIND', r.kind),
    subject: given(r.subject),
    operation: given(r.operation),
    access: access === 'any' ? '*' : access,
    when: given(r.when),
    effect: restEnum('POLICY_EFFECT', r.effect),
    role: given(r.role),
  });
}

/** PutPolicyRequest → the REST body of PUT /v1/tenants/{t}/policy. */
export function policyBodyFromPb(req: PbPutPolicyRequest): Record<string, unknown> {
  let revision: number | undefined;
  if (req.revision !== undefined && req.revision !== null) {
    revision = Number(req.revision);
    if (!Number.isSafeInteger(revision) || revision < 0) throw invalid('revision is not a revision this server issued', [{ field: 'revision', message: 'out of range' }]);
  }
  return compact({ rules: (req.rules ?? []).map(ruleFromPb), revision });
}

export function ruleToPb(r: TenantRule | BuiltinRule): PbPolicyRule {
  if (r.kind === 'role') return { kind: 'POLICY_RULE_KIND_ROLE', subject: r.subject, role: r.role };
  const access = r.access ?? '*';
  return {
    kind: 'POLICY_RULE_KIND_PERMISSION', subject: r.subject, operation: r.operation,
    access: access === '*' ? 'POLICY_ACCESS_ANY' : enumFromRest('POLICY_ACCESS', access),
    when: r.when ?? '*', effect: enumFromRest('POLICY_EFFECT', r.effect),
  };
}

export const policyToPb = (p: PolicyView): PbPolicy => ({
  tenant: p.tenant, revision: p.revision, rules: p.rules.map(ruleToPb), builtin: p.builtin.map(ruleToPb),
});

/** `agentmesh.v1.Policies`: REST's twin (TenantPolicyApi), same operation ids, schema, audit record and errors. */
export function policiesService(api: TenantPolicyApi, deps: CallDeps, method: (name: string) => string): UntypedServiceImplementation {
  return {
    GetPolicy: unary(method('GetPolicy'), deps, async (req: PbTenantRequest, ctx: CallContext): Promise<PbGetPolicyResponse> => {
      await ctx.authorize('policy.get', req.tenant, undefined);
      return { policy: policyToPb(await api.get(req.tenant!)) };
    }),
    PutPolicy: unary(method('PutPolicy'), deps, async (req: PbPutPolicyRequest, ctx: CallContext): Promise<PbPutPolicyResponse> => {
      const principal = await ctx.authorize('policy.put', req.tenant, undefined);
      const body = policyBodyFromPb(req);
      ctx.checkpoint();
      return { policy: policyToPb(await api.put(req.tenant!, body, principal)) };
    }),
  };
}

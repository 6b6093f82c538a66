import { describe, expect, it } from '@jest/globals';
import type { MethodDefinition } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { PROTO_FILES, PROTO_PACKAGE, protoLoaderOptions, type BudgetView } from '#libs/contracts';
import { OPERATIONS, ROUTED_OPERATION_IDS, type OperationId } from '#libs/policy';
import type { PbBudget, PbPolicyRule, PbPutBudgetRequest, PbPutPolicyRequest } from '#libs/sdk';
import { AUDITED_GRPC_PATHS, grpcAuditFacts, restAuditFacts } from '../audit/audited-operations.js';
import { budgetBodyFromPb, budgetToPb } from '../budgets/budgets.grpc.js';
import { BUILTIN_RULES } from '../policy/policy.api.js';
import { policyBodyFromPb, ruleFromPb, ruleToPb } from '../policy/policy.grpc.js';

/**
 * Every REST operation's gRPC twin, by policy operation id: the method that ctx.authorize()s it.
 * REST DELETE /credentials/{name} is decided as credentials.put, and so is RevokeCredential.
 * `tools.run` is internal (the orchestrator decides it when a run starts): no route, no twin.
 */
const TWINS: Record<Exclude<OperationId, 'tools.run'>, string[]> = {
  'tenants.create': ['Tenants/CreateTenant'], 'apikeys.issue': ['Tenants/IssueApiKey'], 'apikeys.revoke': ['Tenants/RevokeApiKey'],
  'tools.put': ['Tools/PutTool'], 'tools.list': ['Tools/ListTools'], 'tools.get': ['Tools/GetTool'],
  'tools.disable': ['Tools/DisableTool'], 'tools.enable': ['Tools/EnableTool'],
  'agents.put': ['Agents/PutAgent'], 'agents.get': ['Agents/GetAgent'], 'agents.list': ['Agents/ListAgents'],
  'runs.start': ['Runs/StartRun'], 'runs.get': ['Runs/GetRun'], 'runs.list': ['Runs/ListRuns'], 'runs.events': ['Runs/WatchRun'],
  'runs.cancel': ['Runs/CancelRun'],
  'approvals.list': ['Approvals/ListApprovals'], 'approvals.decide': ['Approvals/DecideApproval'],
  'credentials.put': ['Credentials/PutCredential', 'Credentials/RevokeCredential'], 'credentials.list': ['Credentials/ListCredentials'],
  'budget.get': ['Budgets/GetBudget'], 'budget.put': ['Budgets/PutBudget'], 'usage.get': ['Budgets/GetUsage'],
  'audit.get': ['Audit/ListAudit'], 'policy.get': ['Policies/GetPolicy'], 'policy.put': ['Policies/PutPolicy'],
  'sessions.get': ['Sessions/GetSession'],
};

const pkg: PackageDefinition = loadSync([...PROTO_FILES], protoLoaderOptions());
const methodDef = (path: string) => {
  const [service, name] = path.split('/');
  return (pkg[`${PROTO_PACKAGE}.${service}`] as unknown as Record<string, MethodDefinition<object, object>>)[name]!;
};
/** A request as the server receives it: serialised by a client, decoded with the gateway's loader options. */
const overTheWire = <T extends object>(path: string, req: T): T => methodDef(path).requestDeserialize(methodDef(path).requestSerialize(req)) as T;
const responseOverTheWire = <T extends object>(path: string, res: T): T => methodDef(path).responseDeserialize(methodDef(path).responseSerialize(res)) as T;

describe('every REST operation has its gRPC twin', () => {
  it('maps every operation of the policy catalogue to methods of the contract, and every method to an operation', () => {
    expect(Object.keys(TWINS).sort()).toEqual([...ROUTED_OPERATION_IDS].sort());
    const methods = Object.keys(pkg)
      .filter((n) => n.startsWith(`${PROTO_PACKAGE}.`) && !('format' in (pkg[n] as object)))
      .flatMap((n) => Object.keys(pkg[n] as object).map((m) => `${n.slice(PROTO_PACKAGE.length + 1)}/${m}`));
    expect(Object.values(TWINS).flat().sort()).toEqual(methods.sort());
    for (const op of ROUTED_OPERATION_IDS) expect(OPERATIONS[op].http?.path).toBeDefined();
    expect(OPERATIONS['tools.run'].http).toBeUndefined();
  });

  it('audits the security-relevant twins as REST does', () => {
    for (const path of ['Budgets/PutBudget', 'Credentials/RevokeCredential', 'Credentials/PutCredential']) {
      expect(AUDITED_GRPC_PATHS.has(`/${PROTO_PACKAGE}.${path}`)).toBe(true);
    }
    // PutPolicy records its own entry (with the rules) through TenantPolicyApi: never twice
    expect(AUDITED_GRPC_PATHS.has(`/${PROTO_PACKAGE}.Policies/PutPolicy`)).toBe(false);
    const req = overTheWire<PbPutBudgetRequest>('Budgets/PutBudget', { tenant: 'acme', period: 'BUDGET_PERIOD_DAY', agents: { hello: { limit_usd: 5 }, free: {} } });
    const grpc = grpcAuditFacts(`/${PROTO_PACKAGE}.Budgets/PutBudget`, req, {});
    const rest = restAuditFacts('budget.put', { method: 'PUT', params: { t: 'acme' }, body: budgetBodyFromPb(req), status: 200, result: {} });
    expect(grpc).toEqual(rest);
    expect(grpc?.details).toEqual({ limitUsd: null, period: 'day', agents: { hello: { limitUsd: 5 }, free: { limitUsd: null } } });
    expect(grpcAuditFacts(`/${PROTO_PACKAGE}.Credentials/RevokeCredential`, { tenant: 'acme', name: 'stripe' }, { name: 'stripe' }))
      .toEqual(restAuditFacts('credentials.put', { method: 'DELETE', params: { t: 'acme', name: 'stripe' }, body: undefined, status: 204, result: undefined }));
  });
});

describe('budgets over gRPC', () => {
  it('tells an unset limit (REST null: no limit) from 0 (stop all spending) in PutBudgetRequest', () => {
    expect(budgetBodyFromPb(overTheWire('Budgets/PutBudget', { tenant: 'acme', period: 'BUDGET_PERIOD_MONTH' }))).toEqual({ limitUsd: null, period: 'month' });
    expect(budgetBodyFromPb(overTheWire('Budgets/PutBudget', { tenant: 'acme', limit_usd: 0, period: 'BUDGET_PERIOD_DAY' }))).toEqual({ limitUsd: 0, period: 'day' });
    expect(budgetBodyFromPb(overTheWire('Budgets/PutBudget', { tenant: 'acme', limit_usd: 12.5, agents: { a: { limit_usd: 0 }, b: {} } })))
      .toEqual({ limitUsd: 12.5, agents: { a: { limitUsd: 0 }, b: { limitUsd: null } } });
  });

  it('answers the REST budget view field by field, null limits unset', () => {
    const view: BudgetView = {
      tenantId: 'acme', limitUsd: null, period: 'month', spentUsd: 1.25, reservedUsd: 0.5, remainingUsd: null, state: 'ok',
      periodStart: '2026-05-01T00:00:00.000Z', periodEnd: '2026-06-01T00:00:00.000Z', updatedAt: null,
      agents: { hello: { limitUsd: 0, spentUsd: 0, reservedUsd: 0, remainingUsd: 0 } },
    };
    const pb = responseOverTheWire<{ budget: PbBudget }>('Budgets/GetBudget', { budget: budgetToPb(view) }).budget;
    expect(pb.limit_usd).toBeUndefined();
    expect(pb.remaining_usd).toBeUndefined();
    expect(pb).toMatchObject({ tenant_id: 'acme', period: 'BUDGET_PERIOD_MONTH', state: 'BUDGET_STATE_OK', spent_usd: 1.25, reserved_usd: 0.5, updated_at: null });
    expect(pb.agents?.hello).toMatchObject({ limit_usd: 0, remaining_usd: 0 });
  });
});

describe('policies over gRPC', () => {
  it('turns PolicyRules into the REST rules, passing on only what was set so that the schema judges them alike', () => {
    const req = overTheWire<PbPutPolicyRequest>('Policies/PutPolicy', {
      tenant: 'acme',
      rules: [
        { kind: 'POLICY_RULE_KIND_PERMISSION', subject: 'developer', operation: 'tools.put', when: 'riskTier=irreversible', effect: 'POLICY_EFFECT_DENY' },
        { kind: 'POLICY_RULE_KIND_PERMISSION', subject: '*', operation: 'runs.*', access: 'POLICY_ACCESS_ANY', effect: 'POLICY_EFFECT_ALLOW' },
        { kind: 'POLICY_RULE_KIND_ROLE', subject: 'key:01J', role: 'operator' },
        { subject: 'x', role: 'y', effect: 'POLICY_EFFECT_ALLOW' },
      ],
    });
    expect(policyBodyFromPb(req)).toEqual({
      rules: [
        { kind: 'permission', subject: 'developer', operation: 'tools.put', when: 'riskTier=irreversible', effect: 'deny' },
        { kind: 'permission', subject: '*', operation: 'runs.*', access: '*', effect: 'allow' },
        { kind: 'role', subject: 'key:01J', role: 'operator' },
        { subject: 'x', role: 'y', effect: 'allow' },
      ],
    });
  });

  it('tells an unset revision (last writer wins) from revision 0 (only if never written)', () => {
    expect(policyBodyFromPb(overTheWire('Policies/PutPolicy', { tenant: 'acme', rules: [] }))).toEqual({ rules: [] });
    expect(policyBodyFromPb(overTheWire('Policies/PutPolicy', { tenant: 'acme', rules: [], revision: 0 }))).toEqual({ rules: [], revision: 0 });
    expect(policyBodyFromPb(overTheWire('Policies/PutPolicy', { tenant: 'acme', rules: [], revision: '7' }))).toEqual({ rules: [], revision: 7 });
  });

  it('answers stored and built-in rules so that they read back as the same REST rules', () => {
    const stored = [
      { kind: 'permission', subject: 'developer', operation: 'tools.put', access: '*', when: 'riskTier=irreversible', effect: 'deny' } as const,
      { kind: 'role', subject: 'key:01J', role: 'operator' } as const,
    ];
    for (const r of [...stored, ...BUILTIN_RULES]) {
      const back = responseOverTheWire<{ policy: { rules: PbPolicyRule[] } }>('Policies/GetPolicy', { policy: { rules: [ruleToPb(r)] } }).policy.rules[0]!;
      expect(ruleFromPb(back)).toEqual(r);
    }
  });
});

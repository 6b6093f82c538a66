import { describe, expect, it } from '@jest/globals';
import { auditPageFromPb, budgetFromPb, policyRuleFromPb, policyRuleToPb, sessionFromPb, usageFromPb } from './convert.js';
import type { PolicyRule } from './types.js';

describe('SDK conversions of the budget, audit, policy and session messages', () => {
  it('reads an unset limit as null (no limit) and 0 as 0', () => {
    expect(budgetFromPb({ period: 'BUDGET_PERIOD_DAY', spent_usd: 1, state: 'BUDGET_STATE_LOW', agents: { a: { limit_usd: 0, spent_usd: 0 } } })).toEqual({
      tenantId: '', limitUsd: null, period: 'day', spentUsd: 1, reservedUsd: 0, remainingUsd: null, state: 'low',
      periodStart: null, periodEnd: null, agents: { a: { limitUsd: 0, spentUsd: 0, reservedUsd: 0, remainingUsd: null } }, updatedAt: null,
    });
  });

  it('reads usage rows, totals and 64-bit counts', () => {
    expect(usageFromPb({ rows: [{ key: 'm', cost: { usd: 0.5, input_tokens: '10', output_tokens: '2' }, count: '3' }], total: { usd: 0.5 }, total_calls: '3', group_by: 'USAGE_GROUP_BY_MODEL' }))
      .toEqual({ from: null, to: null, groupBy: 'model', rows: [{ key: 'm', cost: { usd: 0.5, inputTokens: 10, outputTokens: 2 }, count: 3 }], total: { usd: 0.5, inputTokens: 0, outputTokens: 0 }, totalCalls: 3 });
  });

  it('reads an audit page: next 0 is the last page, an unset head an empty chain', () => {
    expect(auditPageFromPb({ tenant: 'acme', records: [], next: '0', head: null })).toEqual({ tenant: 'acme', records: [], next: null, head: null });
    const page = auditPageFromPb({
      tenant: 'acme', next: '5', head: { seq: '9', hash: 'h' },
      records: [{ v: 1, seq: '5', id: 'r', at: { seconds: 0, nanos: 0 }, action: 'policy.put', actor: { kind: 'api_key', id: 'key:1', roles: [] }, prev_hash: 'p', hash: 'h', json: '{}' }],
    });
    expect(page.next).toBe(5);
    expect(page.head).toEqual({ seq: 9, hash: 'h' });
    expect(page.records[0]).toEqual({ v: 1, tenantId: '', seq: 5, id: 'r', at: '1970-01-01T00:00:00.000Z', action: 'policy.put', actor: { kind: 'api_key', id: 'key:1' }, prevHash: 'p', hash: 'h', json: '{}' });
  });

  it('sends policy rules as PolicyRule messages and reads them back unchanged', () => {
    const rules: PolicyRule[] = [
      { kind: 'permission', subject: 'developer', operation: 'tools.put', access: '*', when: 'riskTier=irreversible', effect: 'deny' },
      { kind: 'permission', subject: 'viewer', operation: 'runs.*', access: 'read', effect: 'allow' },
      { kind: 'role', subject: 'key:01J', role: 'operator' },
    ];
    for (const r of rules) expect(policyRuleFromPb(policyRuleToPb(r))).toEqual(r);
    expect(policyRuleToPb({ kind: 'permission', subject: 's', operation: 'o', effect: 'allow' }).access).toBe('POLICY_ACCESS_UNSPECIFIED');
  });

  it('reads session summaries: unset is null, an empty string stays one', () => {
    const s = sessionFromPb({ session_id: 'chat', runs: [{ run_id: 'run_1', status: 'RUN_STATUS_COMPLETED', input: '', output: null }] });
    expect(s.runs[0]).toMatchObject({ runId: 'run_1', status: 'completed', input: '', output: null, error: null, endedAt: null });
  });
});

import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { BudgetLine, BudgetView, UsageReport } from '#libs/contracts';
import {
  enumFromRest, fromPbTimestamp, JsonConversionError, toPbTimestamp, type PbBudget, type PbBudgetLine, type PbGetBudgetResponse,
  type PbGetUsageRequest, type PbGetUsageResponse, type PbPutBudgetRequest, type PbPutBudgetResponse, type PbTenantRequest, type PbTimestamp,
} from '#libs/sdk';
import { invalid } from '#libs/contracts';
import { unary, type CallContext, type CallDeps } from '../grpc/call.js';
import { compact, restEnum } from '../grpc/mapping.js';
import type { BudgetsApi } from './budgets.api.js';

/** PutBudgetRequest → the REST body of PUT /v1/tenants/{t}/budget (an unset limit is REST's `null`: no limit). */
export function budgetBodyFromPb(req: PbPutBudgetRequest): Record<string, unknown> {
  const agents = Object.entries(req.agents ?? {});
  return compact({
    limitUsd: typeof req.limit_usd === 'number' ? req.limit_usd : null,
    period: restEnum('BUDGET_PERIOD', req.period),
    agents: agents.length ? Object.fromEntries(agents.map(([name, a]) => [name, { limitUsd: typeof a?.limit_usd === 'number' ? a.limit_usd : null }])) : undefined,
  });
}

const lineToPb = (l: BudgetLine): PbBudgetLine => ({
  limit_usd: l.limitUsd, spent_usd: l.spentUsd, reserved_usd: l.reservedUsd, remaining_usd: l.remainingUsd,
});

/** The REST budget view → Budget (null limits stay unset). */
export function budgetToPb(b: BudgetView): PbBudget {
  return {
    ...lineToPb(b),
    tenant_id: b.tenantId,
    period: enumFromRest('BUDGET_PERIOD', b.period),
    state: enumFromRest('BUDGET_STATE', b.state),
    period_start: b.periodStart ? toPbTimestamp(b.periodStart) : null,
    period_end: b.periodEnd ? toPbTimestamp(b.periodEnd) : null,
    agents: Object.fromEntries(Object.entries(b.agents ?? {}).map(([name, l]) => [name, lineToPb(l)])),
    updated_at: b.updatedAt ? toPbTimestamp(b.updatedAt) : null,
  };
}

/** The REST usage report → GetUsageResponse (groups are rows, totals the total). */
export function usageToPb(r: UsageReport): PbGetUsageResponse {
  return {
    from: toPbTimestamp(r.from), to: toPbTimestamp(r.to),
    rows: r.groups.map((g) => ({ key: g.key, cost: { usd: g.usd, input_tokens: g.inputTokens, output_tokens: g.outputTokens }, count: g.calls })),
    total: { usd: r.totals.usd, input_tokens: r.totals.inputTokens, output_tokens: r.totals.outputTokens },
    total_calls: r.totals.calls,
    group_by: enumFromRest('USAGE_GROUP_BY', r.groupBy),
  };
}

/** A Timestamp of GetUsageRequest → the ISO instant REST takes as `?from=` / `?to=` (unset: the default). */
function instantOf(ts: PbTimestamp | null | undefined, field: string): string | undefined {
  try {
    return fromPbTimestamp(ts) ?? undefined;
  } catch (e) {
    if (e instanceof JsonConversionError) throw invalid(`${field} is not a valid timestamp`, [{ field, message: 'is not a date' }]);
    throw e;
  }
}

/** `agentmesh.v1.Budgets`: REST's twin (BudgetsApi), same operation ids, validation and errors. */
export function budgetsService(budgets: BudgetsApi, deps: CallDeps, method: (name: string) => string): UntypedServiceImplementation {
  return {
    GetBudget: unary(method('GetBudget'), deps, async (req: PbTenantRequest, ctx: CallContext): Promise<PbGetBudgetResponse> => {
      await ctx.authorize('budget.get', req.tenant, undefined);
      return { budget: budgetToPb(await budgets.get(req.tenant!)) };
    }),
    PutBudget: unary(method('PutBudget'), deps, async (req: PbPutBudgetRequest, ctx: CallContext): Promise<PbPutBudgetResponse> => {
      const body = budgetBodyFromPb(req);
      await ctx.authorize('budget.put', req.tenant, body);
      ctx.checkpoint();
      return { budget: budgetToPb(await budgets.put(req.tenant!, body)) };
    }),
    GetUsage: unary(method('GetUsage'), deps, async (req: PbGetUsageRequest, ctx: CallContext): Promise<PbGetUsageResponse> => {
      await ctx.authorize('usage.get', req.tenant, undefined);
      const q = compact({ from: instantOf(req.from, 'from'), to: instantOf(req.to, 'to'), groupBy: restEnum('USAGE_GROUP_BY', req.group_by) });
      return usageToPb(await budgets.usage(req.tenant!, q));
    }),
  };
}

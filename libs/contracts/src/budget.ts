/**
 * Budgets, reservations and usage: the cost-governor's contract. Money crosses the wire in USD
 * (numbers with at most 6 decimals, i.e. whole micro-dollars); the governor keeps integers of
 * micro-dollars so sums never drift.
 */
export type BudgetPeriod = 'day' | 'month';
export const BUDGET_PERIODS: readonly BudgetPeriod[] = ['day', 'month'];

/** `exhausted`: spent reached the limit (the tenant circuit breaker is open); `low`: under 10% left. */
export type BudgetStatus = 'ok' | 'low' | 'exhausted';

/** What an operator sets (`PUT /v1/tenants/{t}/budget`). `limitUsd: null` means no limit; 0 stops all spending. */
export interface BudgetSettings {
  limitUsd: number | null;
  period: BudgetPeriod;
  /** Optional caps per agent name, counted in the same period. */
  agents?: Record<string, { limitUsd: number | null }>;
}

export interface BudgetLine {
  limitUsd: number | null;
  spentUsd: number;
  reservedUsd: number;
  /** limit - spent - reserved (never below 0); null without a limit. */
  remainingUsd: number | null;
}

/** A tenant's budget as the API shows it. */
export interface BudgetView extends BudgetLine {
  tenantId: string;
  period: BudgetPeriod;
  periodStart: string;
  periodEnd: string;
  state: BudgetStatus;
  agents: Record<string, BudgetLine>;
  updatedAt: string | null;
}

export type CallKind = 'tool' | 'llm';

/** Reserve the worst-case cost of one call, idempotent on `callKey`. */
export interface ReserveRequest {
  tenantId: string;
  callKey: string;
  runId: string;
  agent: string;
  kind: CallKind;
  tool?: string;
  model?: string;
  /** Worst-case cost of the call. */
  usd: number;
  /** The run's own cap (`limits.budgetUsd`) and what the run has spent so far. */
  run?: { spentUsd: number; limitUsd?: number };
}

export type BudgetScope = 'tenant' | 'agent' | 'run';

export type ReserveResult =
  | { granted: true; usd: number; replayed: boolean }
  | { granted: false; scope: BudgetScope; reason: string; replayed: boolean };

/** Settle the actual cost of a reserved call and release the rest; charged once per `callKey`. */
export interface SettleRequest {
  tenantId: string;
  callKey: string;
  usd: number;
  usage?: { inputTokens: number; outputTokens: number };
  /** What the call was (as reserved), for its usage record should the reservation's copy be gone. */
  call?: { runId: string; agent: string; kind: CallKind; tool?: string; model?: string };
}

/** `usd`: what was charged for the call (the first settlement's amount on a replay). */
export interface SettleResult {
  usd: number;
  replayed: boolean;
}

/** One metered call on the AGENTMESH_USAGE stream (`usage.<tenant>`), for billing systems. */
export interface UsageEvent {
  tenantId: string;
  runId: string;
  agent: string;
  callKey: string;
  kind: CallKind;
  tool?: string;
  model?: string;
  usd: number;
  inputTokens: number;
  outputTokens: number;
  /** When the call was settled (ISO-8601). */
  at: string;
}

export const USAGE_GROUP_BY = ['agent', 'model', 'tool'] as const;
export type UsageGroupBy = (typeof USAGE_GROUP_BY)[number];

export interface UsageTotals {
  usd: number;
  calls: number;
  inputTokens: number;
  outputTokens: number;
}

/** Metered usage over [from, to), from hourly rollups. */
export interface UsageReport {
  tenantId: string;
  from: string;
  to: string;
  granularity: 'hour';
  groupBy: UsageGroupBy | null;
  totals: UsageTotals;
  groups: Array<{ key: string } & UsageTotals>;
}

const usd = { type: 'number', minimum: 0, maximum: 1_000_000_000, multipleOf: 0.000001 } as const;

export const budgetBodySchema = {
  $id: 'agentmesh/budget-body',
  type: 'object',
  additionalProperties: false,
  required: ['limitUsd', 'period'],
  properties: {
    limitUsd: { oneOf: [usd, { type: 'null' }] },
    period: { enum: ['day', 'month'] },
    agents: {
      type: 'object',
      maxProperties: 256,
      propertyNames: { pattern: '^[a-zA-Z][a-zA-Z0-9_-]{0,63}$' },
      additionalProperties: {
        type: 'object', additionalProperties: false, required: ['limitUsd'],
        properties: { limitUsd: { oneOf: [usd, { type: 'null' }] } },
      },
    },
  },
} as const;

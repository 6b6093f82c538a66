import type { NatsConnection } from '@nats-io/transport-node';
import {
  budgetBodySchema, invalid, SchemaValidator, USAGE_GROUP_BY, type BudgetSettings, type BudgetView, type UsageGroupBy, type UsageReport,
} from '#libs/contracts';
import { RpcClient } from '#libs/messaging';
import { BudgetStates } from './budget-states.js';

const v = new SchemaValidator();
const DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

function instant(raw: unknown, field: string, fallback: Date): Date {
  if (raw === undefined || raw === '') return fallback;
  const d = typeof raw === 'string' && DATE.test(raw) ? new Date(raw) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw invalid(`${field} must be an ISO-8601 date or date-time (e.g. 2026-05-01 or 2026-05-01T12:00:00Z)`, [{ field, message: 'is not a date' }]);
  return d;
}

/** The usage query as REST takes it (`?from=&to=&groupBy=`): strings, any of them left out. */
export interface UsageQuery {
  from?: unknown;
  to?: unknown;
  groupBy?: unknown;
}

/**
 * The budget and usage operations of a tenant, shared by REST (BudgetsController) and gRPC
 * (agentmesh.v1.Budgets): the cost-governor owns both and answers over NATS; budgets it returns
 * refresh the admission state the Authorizer uses (BudgetStates). Bodies and queries are validated
 * here, so both APIs refuse the same input with the same field problems.
 */
export class BudgetsApi {
  private readonly rpc: RpcClient;
  private readonly states: BudgetStates;

  constructor(nc: NatsConnection, budgetStateCacheMs: number) {
    this.rpc = new RpcClient(nc);
    this.states = BudgetStates.for(nc, budgetStateCacheMs);
  }

  /** `budget.get`. */
  async get(tenant: string): Promise<BudgetView> {
    const view = await this.rpc.call('budget.get', { tenantId: tenant });
    this.states.remember(view);
    return view;
  }

  /** `budget.put`: `body` is the REST body `{limitUsd, period, agents?}` (400 naming the field otherwise). */
  async put(tenant: string, body: unknown): Promise<BudgetView> {
    const budget = v.assert<BudgetSettings>('budget-body', budgetBodySchema, body);
    const view = await this.rpc.call('budget.put', { tenantId: tenant, budget });
    this.states.remember(view);
    return view;
  }

  /**
   * `usage.get`: hourly rollups of the hours overlapping [from, to); `from` defaults to the start
   * of the current month (UTC), `to` to now.
   */
  usage(tenant: string, q: UsageQuery): Promise<UsageReport> {
    const now = new Date();
    const to = instant(q.to, 'to', now);
    const from = instant(q.from, 'from', new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)));
    if (from.getTime() >= to.getTime()) throw invalid('from must be before to', [{ field: 'from', message: 'must be before to' }]);
    if (q.groupBy !== undefined && !(USAGE_GROUP_BY as readonly string[]).includes(String(q.groupBy))) {
      throw invalid(`groupBy must be one of ${USAGE_GROUP_BY.join(', ')}`, [{ field: 'groupBy', message: 'unknown grouping' }]);
    }
    return this.rpc.call('usage.get', { tenantId: tenant, from: from.toISOString(), to: to.toISOString(), ...(q.groupBy ? { groupBy: q.groupBy as UsageGroupBy } : {}) });
  }
}

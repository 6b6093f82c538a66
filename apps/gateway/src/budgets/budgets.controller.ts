import { Body, Controller, Get, Inject, Param, Put, Query } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { budgetBodySchema, invalid, SchemaValidator, USAGE_GROUP_BY, type BudgetSettings, type UsageGroupBy } from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CONFIG, NATS, RpcClient } from '#libs/messaging';
import { Operation } from '../http/auth.js';
import { BudgetStates } from './budget-states.js';

const v = new SchemaValidator();
const DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

function instant(raw: unknown, field: string, fallback: Date): Date {
  if (raw === undefined || raw === '') return fallback;
  const d = typeof raw === 'string' && DATE.test(raw) ? new Date(raw) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw invalid(`${field} must be an ISO-8601 date or date-time (e.g. 2026-05-01 or 2026-05-01T12:00:00Z)`, [{ field, message: 'is not a date' }]);
  return d;
}

/**
 * The tenant's budget and metered usage; the cost-governor owns both and answers over NATS.
 * `GET /budget`: `{limitUsd, period, spentUsd, reservedUsd, remainingUsd, state, periodStart, periodEnd, agents}`.
 * `PUT /budget`: `{limitUsd, period: "day"|"month", agents?: {<agent>: {limitUsd}}}` (`limitUsd: null`: no limit).
 * `GET /usage?from=&to=&groupBy=agent|model|tool`: hourly rollups of the hours overlapping
 * [from, to); `from` defaults to the start of the current month, `to` to now.
 */
@Controller('v1/tenants/:t')
export class BudgetsController {
  private readonly rpc: RpcClient;
  private readonly states: BudgetStates;
  constructor(@Inject(NATS) nc: NatsConnection, @Inject(CONFIG) config: AppConfig) {
    this.rpc = new RpcClient(nc);
    this.states = BudgetStates.for(nc, config.budgetStateCacheMs);
  }

  @Get('budget')
  @Operation('budget.get')
  async get(@Param('t') t: string) {
    const view = await this.rpc.call('budget.get', { tenantId: t });
    this.states.remember(view);
    return view;
  }

  @Put('budget')
  @Operation('budget.put')
  async put(@Param('t') t: string, @Body() body: unknown) {
    const budget = v.assert<BudgetSettings>('budget-body', budgetBodySchema, body);
    const view = await this.rpc.call('budget.put', { tenantId: t, budget });
    this.states.remember(view);
    return view;
  }

  @Get('usage')
  @Operation('usage.get')
  usage(@Param('t') t: string, @Query() q: Record<string, unknown>) {
    const now = new Date();
    const to = instant(q.to, 'to', now);
    const from = instant(q.from, 'from', new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)));
    if (from.getTime() >= to.getTime()) throw invalid('from must be before to', [{ field: 'from', message: 'must be before to' }]);
    if (q.groupBy !== undefined && !(USAGE_GROUP_BY as readonly string[]).includes(String(q.groupBy))) {
      throw invalid(`groupBy must be one of ${USAGE_GROUP_BY.join(', ')}`, [{ field: 'groupBy', message: 'unknown grouping' }]);
    }
    return this.rpc.call('usage.get', { tenantId: t, from: from.toISOString(), to: to.toISOString(), ...(q.groupBy ? { groupBy: q.groupBy as UsageGroupBy } : {}) });
  }
}

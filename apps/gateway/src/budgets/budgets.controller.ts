import { Body, Controller, Get, Inject, Param, Put, Query } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { AppConfig } from '#libs/config';
import { CONFIG, NATS } from '#libs/messaging';
import { Operation } from '../http/auth.js';
import { BudgetsApi } from './budgets.api.js';

/**
 * The tenant's budget and metered usage; the cost-governor owns both and answers over NATS
 * (BudgetsApi, shared with the gRPC Budgets service).
 * `GET /budget`: `{limitUsd, period, spentUsd, reservedUsd, remainingUsd, state, periodStart, periodEnd, agents}`.
 * `PUT /budget`: `{limitUsd, period: "day"|"month", agents?: {<agent>: {limitUsd}}}` (`limitUsd: null`: no limit).
 * `GET /usage?from=&to=&groupBy=agent|model|tool`: hourly rollups of the hours overlapping
 * [from, to); `from` defaults to the start of the current month, `to` to now.
 */
@Controller('v1/tenants/:t')
export class BudgetsController {
  private readonly budgets: BudgetsApi;
  constructor(@Inject(NATS) nc: NatsConnection, @Inject(CONFIG) config: AppConfig) {
    this.budgets = new BudgetsApi(nc, config.budgetStateCacheMs);
  }

  @Get('budget')
  @Operation('budget.get')
  get(@Param('t') t: string) {
    return this.budgets.get(t);
  }

  @Put('budget')
  @Operation('budget.put')
  put(@Param('t') t: string, @Body() body: unknown) {
    return this.budgets.put(t, body);
  }

  @Get('usage')
  @Operation('usage.get')
  usage(@Param('t') t: string, @Query() q: Record<string, unknown>) {
    return this.budgets.usage(t, q);
  }
}

import { Payload } from '@nestjs/microservices';
import {
  budgetBodySchema, invalid, isTenantId, SchemaValidator, USAGE_GROUP_BY,
  type BudgetSettings, type RpcMap,
} from '#libs/contracts';
import { MessageController, OnRpc } from '#libs/messaging';
import { Governor } from './governor.service.js';

const validator = new SchemaValidator();
const MAX_USD = 1_000_000;
const CALL_KEY = /^[A-Za-z0-9_:.-]{1,200}$/;
const MAX_RANGE_MS = 400 * 24 * 3600_000;

function tenantOf(req: { tenantId: string }): string {
  if (!isTenantId(req.tenantId)) throw invalid('tenantId is not a valid tenant id');
  return req.tenantId;
}

function amount(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_USD) throw invalid(`${field} must be an amount in USD from 0 to ${MAX_USD}`, [{ field, message: 'out of range' }]);
  return v;
}

function callKeyOf(v: unknown): string {
  if (typeof v !== 'string' || !CALL_KEY.test(v)) throw invalid('callKey is malformed', [{ field: 'callKey', message: 'is malformed' }]);
  return v;
}

function instant(v: unknown, field: string): Date {
  const d = typeof v === 'string' ? new Date(v) : new Date(NaN);
  if (Number.isNaN(d.getTime())) throw invalid(`${field} must be an ISO-8601 date or date-time`, [{ field, message: 'is not a date' }]);
  return d;
}

/** The cost-governor's questions: reserve/settle (orchestrator), budget and usage (gateway). */
@MessageController()
export class BudgetController {
  constructor(private readonly governor: Governor) {}

  @OnRpc('budget.reserve')
  reserve(@Payload() req: RpcMap['budget.reserve']['req']) {
    tenantOf(req);
    callKeyOf(req.callKey);
    amount(req.usd, 'usd');
    if (req.kind !== 'tool' && req.kind !== 'llm') throw invalid('kind must be tool or llm', [{ field: 'kind', message: 'unknown kind' }]);
    if (typeof req.runId !== 'string' || typeof req.agent !== 'string') throw invalid('runId and agent are required');
    if (req.run) {
      amount(req.run.spentUsd, 'run.spentUsd');
      if (req.run.limitUsd !== undefined) amount(req.run.limitUsd, 'run.limitUsd');
    }
    return this.governor.reserve(req);
  }

  @OnRpc('budget.settle')
  settle(@Payload() req: RpcMap['budget.settle']['req']) {
    tenantOf(req);
    callKeyOf(req.callKey);
    amount(req.usd, 'usd');
    return this.governor.settle(req);
  }

  @OnRpc('budget.get')
  get(@Payload() req: RpcMap['budget.get']['req']) {
    return this.governor.get(tenantOf(req));
  }

  @OnRpc('budget.put')
  put(@Payload() req: RpcMap['budget.put']['req']) {
    const tenantId = tenantOf(req);
    const body = validator.assert<BudgetSettings>('budget-body', budgetBodySchema, req.budget, 'budget');
    return this.governor.put(tenantId, body);
  }

  @OnRpc('usage.get')
  usage(@Payload() req: RpcMap['usage.get']['req']) {
    const tenantId = tenantOf(req);
    const from = instant(req.from, 'from');
    const to = instant(req.to, 'to');
    if (from.getTime() >= to.getTime()) throw invalid('from must be before to', [{ field: 'from', message: 'must be before to' }]);
    if (to.getTime() - from.getTime() > MAX_RANGE_MS) throw invalid('the range from..to may span at most 400 days', [{ field: 'to', message: 'range too long' }]);
    if (req.groupBy !== undefined && !(USAGE_GROUP_BY as readonly string[]).includes(req.groupBy)) {
      throw invalid(`groupBy must be one of ${USAGE_GROUP_BY.join(', ')}`, [{ field: 'groupBy', message: 'unknown grouping' }]);
    }
    return this.governor.report(tenantId, from, to, req.groupBy);
  }
}

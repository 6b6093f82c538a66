import type { ServiceDefinition } from '#libs/messaging';
import { BudgetController } from './budget.controller.js';
import { Governor } from './governor.service.js';

/**
 * The cost-governor: tenant/agent/run budgets, reserve-before-call and settle-after over NATS RPC
 * (queue group `cost-governor`), the tenant circuit breaker flag (KV, watched by orchestrators),
 * and usage metering (AGENTMESH_USAGE stream, hourly rollups).
 */
export const costGovernor: ServiceDefinition = {
  service: 'cost-governor',
  module: { controllers: [BudgetController], providers: [Governor] },
};

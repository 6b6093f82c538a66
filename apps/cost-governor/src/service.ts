import type { ServiceDefinition } from '#libs/messaging';
import { StoreModule } from '#libs/store';
import { BudgetController } from './budget.controller.js';
import { Governor } from './governor.service.js';

/**
 * The cost-governor: tenant/agent/run budgets, reserve-before-call and settle-after over NATS RPC
 * (queue group `cost-governor`), the tenant circuit breaker flag (KV, watched by orchestrators),
 * and usage metering (AGENTMESH_USAGE stream, hourly rollups in libs/store's `usage` repository).
 */
export const costGovernor: ServiceDefinition = {
  service: 'cost-governor',
  // usage rollups through libs/store (MongoDB when MONGODB_URI is set, KV otherwise)
  module: { imports: [StoreModule.forRoot()], controllers: [BudgetController], providers: [Governor] },
};

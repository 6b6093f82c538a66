import { Gauge } from 'prom-client';
import { registry } from '#libs/telemetry';

/** The budget gauges (docs/CONVENTIONS.md), per tenant, as this governor last wrote or read them. */
export const budgetMetrics = {
  limit: new Gauge({ name: 'agentmesh_budget_limit_usd', help: "The tenant's budget limit for the current period (absent: no limit)", labelNames: ['tenant'], registers: [registry] }),
  spent: new Gauge({ name: 'agentmesh_budget_spent_usd', help: 'Spent in the current budget period', labelNames: ['tenant'], registers: [registry] }),
  remaining: new Gauge({ name: 'agentmesh_budget_remaining_usd', help: 'Limit minus spent minus reserved (absent: no limit)', labelNames: ['tenant'], registers: [registry] }),
};

import { Counter } from 'prom-client';
import { registry } from '#libs/telemetry';

/** Admission refusals of the gateway's tenant limits (tenant is bounded by the tenant count). */
export const limitMetrics = {
  refusals: new Counter({
    name: 'agentmesh_tenant_limit_refusals_total',
    help: 'Requests refused by a per-tenant limit: reason rate_limited (token bucket) or concurrent_runs (run cap)',
    labelNames: ['tenant', 'reason'],
    registers: [registry],
  }),
};

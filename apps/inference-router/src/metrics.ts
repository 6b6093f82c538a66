import { Counter, Gauge } from 'prom-client';
import { registry } from '#libs/telemetry';

/** The inference-router's metrics (docs/CONVENTIONS.md). Labels: replica ids, tenants, models, outcomes. */
export const routerMetrics = {
  assignments: new Counter({
    name: 'agentmesh_router_assignments_total',
    help: 'Session turns placed on a replica, by outcome (hit: kept its replica, new, moved: its replica failed, refused: no room)',
    labelNames: ['replica', 'outcome'],
    registers: [registry],
  }),
  affinityHits: new Counter({
    name: 'agentmesh_router_affinity_hits_total',
    help: 'Turns that went to the replica their session was pinned to',
    labelNames: ['replica'],
    registers: [registry],
  }),
  replicaLoad: new Gauge({ name: 'agentmesh_replica_load', help: 'Sessions pinned to the replica (all model pools)', labelNames: ['replica'], registers: [registry] }),
  replicaUp: new Gauge({ name: 'agentmesh_replica_up', help: '1 when the replica passes its health checks, else 0', labelNames: ['replica'], registers: [registry] }),
  tokens: new Counter({ name: 'agentmesh_llm_tokens_total', help: 'LLM tokens by direction (input|output)', labelNames: ['tenant', 'model', 'direction'], registers: [registry] }),
  cost: new Counter({ name: 'agentmesh_llm_cost_usd_total', help: 'LLM cost in USD from the price table', labelNames: ['tenant', 'model'], registers: [registry] }),
};

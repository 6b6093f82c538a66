import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric of the platform, on one registry per process. Label sets are bounded: tenant,
 * tool and model names, statuses and outcomes; never run ids, session ids or anything secret.
 */
export const registry = new Registry();
let defaultsOn = false;

export function initMetrics(service: string): void {
  registry.setDefaultLabels({ service });
  if (!defaultsOn) {
    collectDefaultMetrics({ register: registry, prefix: 'agentmesh_process_' });
    defaultsOn = true;
  }
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export const metrics = {
  httpRequests: new Counter({ name: 'agentmesh_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] }),
  httpDuration: new Histogram({ name: 'agentmesh_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['method', 'route'], buckets: LATENCY_BUCKETS, registers: [registry] }),
  messages: new Counter({ name: 'agentmesh_messages_total', help: 'Messages handled by kind and fate', labelNames: ['kind', 'outcome'], registers: [registry] }),
  messageDuration: new Histogram({ name: 'agentmesh_message_duration_seconds', help: 'Message handling latency', labelNames: ['kind'], buckets: LATENCY_BUCKETS, registers: [registry] }),
  runsStarted: new Counter({ name: 'agentmesh_runs_started_total', help: 'Runs started', labelNames: ['tenant'], registers: [registry] }),
  runsFinished: new Counter({ name: 'agentmesh_runs_finished_total', help: 'Runs finished by terminal status', labelNames: ['tenant', 'status'], registers: [registry] }),
  runsActive: new Gauge({ name: 'agentmesh_runs_active', help: 'Runs in progress held by this worker', labelNames: ['tenant'], registers: [registry] }),
  steps: new Counter({ name: 'agentmesh_steps_total', help: 'Steps executed', labelNames: ['tenant'], registers: [registry] }),
  stepDuration: new Histogram({ name: 'agentmesh_step_duration_seconds', help: 'Step latency from decision to recorded outcome', labelNames: ['tenant'], buckets: LATENCY_BUCKETS, registers: [registry] }),
  toolCalls: new Counter({ name: 'agentmesh_tool_calls_total', help: 'Tool calls by tool and outcome', labelNames: ['tenant', 'tool', 'outcome'], registers: [registry] }),
  consumerPending: new Gauge({ name: 'agentmesh_jetstream_consumer_pending', help: 'Messages not yet delivered to a consumer (lag)', labelNames: ['stream', 'consumer'], registers: [registry] }),
  consumerAckPending: new Gauge({ name: 'agentmesh_jetstream_consumer_ack_pending', help: 'Messages delivered and not yet acknowledged', labelNames: ['stream', 'consumer'], registers: [registry] }),
};

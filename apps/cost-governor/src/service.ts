import type { ServiceDefinition } from '#libs/messaging';

/**
 * The cost-governor: connected to NATS and serving /healthz, /readyz and /metrics. Its own work
 * arrives with its issue; until then it runs so the mesh has all six services.
 */
export const costGovernor: ServiceDefinition = {
  service: 'cost-governor',
  module: {},
};

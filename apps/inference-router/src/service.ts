import type { ServiceDefinition } from '#libs/messaging';

/**
 * The inference-router: connected to NATS and serving /healthz, /readyz and /metrics. Its own work
 * arrives with its issue; until then it runs so the mesh has all six services.
 */
export const inferenceRouter: ServiceDefinition = {
  service: 'inference-router',
  module: {},
};

/**
 * The service catalogue: every service's name and default ports. deploy/, the launcher and the
 * services themselves read ports from here, so they cannot drift apart.
 */
export const SERVICES = {
  gateway: { httpPort: 8080, grpcPort: 50051 },
  orchestrator: { httpPort: 8081 },
  'tool-runner': { httpPort: 8082 },
  'credential-broker': { httpPort: 8083 },
  'cost-governor': { httpPort: 8084 },
  'inference-router': { httpPort: 8085 },
} as const satisfies Record<string, { httpPort: number; grpcPort?: number }>;

export type ServiceName = keyof typeof SERVICES;
export const SERVICE_NAMES = Object.keys(SERVICES) as ServiceName[];

import { SERVICES, type ServiceName } from './services.js';

/** Thrown at start-up when the environment is invalid; lists every bad key at once. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'invalid_config';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

type Env = Record<string, string | undefined>;

class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  str(key: string, fallback: string): string {
    const v = this.env[key];
    return v === undefined || v === '' ? fallback : v;
  }
  optional(key: string): string | undefined {
    const v = this.env[key];
    return v === undefined || v === '' ? undefined : v;
  }
  int(key: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const raw = this.env[key];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      this.problems.push(`${key}=${JSON.stringify(raw)} must be an integer in [${min}, ${max}]`);
      return fallback;
    }
    return n;
  }
  /** Durations like "30s", "250ms", "2m", "24h" or plain milliseconds. */
  duration(key: string, fallback: string): number {
    const raw = this.str(key, fallback);
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
    if (!m) {
      this.problems.push(`${key}=${JSON.stringify(raw)} must be a duration such as 250ms, 30s, 5m, 24h`);
      return 0;
    }
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
    return Math.round(Number(m[1]) * unit);
  }
  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const v = this.str(key, fallback);
    if (!(allowed as readonly string[]).includes(v)) {
      this.problems.push(`${key}=${JSON.stringify(v)} must be one of ${allowed.join(', ')}`);
      return fallback;
    }
    return v as T;
  }
}

export interface AppConfig {
  readonly service: ServiceName;
  readonly natsUrl: string;
  readonly host: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly dataDir: string;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Platform admin API key; generated on first start when absent (see gateway). */
  readonly adminKey: string | undefined;
  readonly mongodbUri: string | undefined;
  /** JetStream ack wait of the work consumers: how soon a crashed worker's message is redelivered. */
  readonly ackWaitMs: number;
  /** Replicas of streams and KV buckets (1 embedded, 3 in production). */
  readonly streamReplicas: number;
  readonly maxBodyBytes: number;
  readonly globalMaxSteps: number;
  readonly snapshotEvery: number;
  readonly toolHttpAllowLoopback: boolean;
}

/**
 * Reads and validates the environment once. Nothing else in the code base reads process.env.
 * Throws ConfigError naming every bad key.
 */
export function loadConfig(service: ServiceName, env: Env = process.env): AppConfig {
  const r = new Reader(env);
  const prefix = service.toUpperCase().replace(/-/g, '_');
  const defaults = SERVICES[service] as { httpPort: number; grpcPort?: number };
  const cfg: AppConfig = {
    service,
    natsUrl: r.str('NATS_URL', 'nats://127.0.0.1:4222'),
    host: r.str('HOST', '127.0.0.1'),
    httpPort: r.int(`${prefix}_PORT`, defaults.httpPort, 0, 65535),
    grpcPort: r.int('GRPC_PORT', defaults.grpcPort ?? 50051, 0, 65535),
    dataDir: r.str('AGENTMESH_DATA_DIR', './data'),
    logLevel: r.oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
    adminKey: r.optional('AGENTMESH_ADMIN_KEY'),
    mongodbUri: r.optional('MONGODB_URI'),
    ackWaitMs: r.duration('AGENTMESH_ACK_WAIT', '30s'),
    streamReplicas: r.int('AGENTMESH_STREAM_REPLICAS', 1, 1, 5),
    maxBodyBytes: r.int('AGENTMESH_MAX_BODY_BYTES', 1_048_576, 1024),
    globalMaxSteps: r.int('AGENTMESH_GLOBAL_MAX_STEPS', 200, 1),
    snapshotEvery: r.int('AGENTMESH_SNAPSHOT_EVERY', 32, 2),
    toolHttpAllowLoopback: r.oneOf('AGENTMESH_TOOL_ALLOW_LOOPBACK', ['true', 'false'] as const, 'false') === 'true',
  };
  if (cfg.ackWaitMs < 1000) r.problems.push('AGENTMESH_ACK_WAIT must be at least 1s');
  if (r.problems.length) throw new ConfigError(r.problems);
  return Object.freeze(cfg);
}

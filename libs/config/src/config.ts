import { SERVICES, type ServiceName } from './services.js';
import { parsePrices, type PriceTable } from './pricing.js';

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
  /** MONGODB_SERVER_SELECTION_TIMEOUT (default 2s): how long a MongoDB call waits for a reachable server before failing `unavailable`. */
  readonly mongodbServerSelectionTimeoutMs: number;
  /** AGENTMESH_SESSION_HISTORY_TTL (default 24h): conversation history expires this long after its last message. */
  readonly sessionHistoryTtlMs: number;
  /** JetStream ack wait of the work consumers: how soon a crashed worker's message is redelivered. */
  readonly ackWaitMs: number;
  /** Replicas of streams and KV buckets (1 embedded, 3 in production). */
  readonly streamReplicas: number;
  readonly maxBodyBytes: number;
  readonly globalMaxSteps: number;
  /** How long session memory and history live after their last write (AGENTMESH_SESSION_TTL, default 24h). */
  readonly sessionTtlMs: number;
  readonly snapshotEvery: number;
  readonly toolHttpAllowLoopback: boolean;
  /** `AGENTMESH_PRICES` (JSON) over DEFAULT_PRICES: model token prices and per-call tool prices. */
  readonly prices: PriceTable;
  /**
   * Loop detection (the engine's DecideOptions.loop; same defaults as DEFAULT_LOOP_DETECTION):
   * `maxIdenticalCalls` (AGENTMESH_LOOP_MAX_IDENTICAL_CALLS, default 3): the same tool with the same
   * arguments at most this many times in a row; `noProgressSteps` (AGENTMESH_LOOP_NO_PROGRESS_STEPS,
   * default 8): this many steps in a row that only repeat earlier calls and outcomes end the run. 0 turns a check off.
   */
  readonly loopDetection: { readonly maxIdenticalCalls: number; readonly noProgressSteps: number };
  /** AGENTMESH_BUDGET_HOLD_TTL (default 1h): a reservation not settled by then stops holding money (it is still charged when settled). */
  readonly budgetHoldTtlMs: number;
  /** AGENTMESH_BUDGET_STATE_CACHE (default 1s): how long the gateway trusts a tenant's budget state for admission. */
  readonly budgetStateCacheMs: number;
}

/**
 * Reads and validates the environment once. Nothing else in the code base reads process.env.
 * Throws ConfigError naming every bad key.
 */
export function loadConfig(service: ServiceName, env: Env = process.env): AppConfig {
  const r = new Reader(env);
  const prefix = service.toUpperCase().replace(/-/g, '_');
  const defaults = SERVICES[service] as { httpPort: number; grpcPort?: number };
  const priced = parsePrices(r.optional('AGENTMESH_PRICES'));
  r.problems.push(...priced.problems);
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
    mongodbServerSelectionTimeoutMs: r.duration('MONGODB_SERVER_SELECTION_TIMEOUT', '2s'),
    sessionHistoryTtlMs: r.duration('AGENTMESH_SESSION_HISTORY_TTL', '24h'),
    ackWaitMs: r.duration('AGENTMESH_ACK_WAIT', '30s'),
    streamReplicas: r.int('AGENTMESH_STREAM_REPLICAS', 1, 1, 5),
    maxBodyBytes: r.int('AGENTMESH_MAX_BODY_BYTES', 1_048_576, 1024),
    globalMaxSteps: r.int('AGENTMESH_GLOBAL_MAX_STEPS', 200, 1),
    sessionTtlMs: r.duration('AGENTMESH_SESSION_TTL', '24h'),
    snapshotEvery: r.int('AGENTMESH_SNAPSHOT_EVERY', 32, 2),
    toolHttpAllowLoopback: r.oneOf('AGENTMESH_TOOL_ALLOW_LOOPBACK', ['true', 'false'] as const, 'false') === 'true',
    prices: priced.prices,
    loopDetection: Object.freeze({
      maxIdenticalCalls: r.int('AGENTMESH_LOOP_MAX_IDENTICAL_CALLS', 3, 0, 10_000),
      noProgressSteps: r.int('AGENTMESH_LOOP_NO_PROGRESS_STEPS', 8, 0, 10_000),
    }),
    budgetHoldTtlMs: r.duration('AGENTMESH_BUDGET_HOLD_TTL', '1h'),
    budgetStateCacheMs: r.duration('AGENTMESH_BUDGET_STATE_CACHE', '1s'),
  };
  if (cfg.ackWaitMs < 1000) r.problems.push('AGENTMESH_ACK_WAIT must be at least 1s');
  if (r.problems.length) throw new ConfigError(r.problems);
  return Object.freeze(cfg);
}

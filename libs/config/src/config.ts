import { SERVICES, type ServiceName } from './services.js';
import { parsePrices, type PriceTable } from './pricing.js';
import { readInferenceConfig, type InferenceConfig } from './inference.js';
import { ConfigSecret, parseMasterKeys, type MasterKeysConfig } from './secrets.js';

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
  /** The inference-router's settings (replicas, model routing, router knobs); set only for that service. See inference.ts. */
  readonly inference?: InferenceConfig;
  /**
   * Credential-broker master keys (key-encryption keys): AGENTMESH_MASTER_KEYS `id:base64,...` (each
   * 32 bytes), the active one AGENTMESH_MASTER_KEY_ACTIVE (may be left out with a single key).
   * Unset: the broker keeps them in `<dataDir>/master.keys`, generated on first start (mode 0600).
   */
  readonly masterKeys: MasterKeysConfig | undefined;
  /**
   * AGENTMESH_DELEGATION_SIGNING_KEY: the Ed25519 private key (PKCS#8 PEM; `\n` escapes allowed) the
   * broker signs delegations with; every broker replica needs the same one. Unset: the broker
   * keeps one in `<dataDir>/delegation.key`, generated on first start (mode 0600).
   */
  readonly delegationSigningKey: ConfigSecret | undefined;
  /** AGENTMESH_DELEGATION_KEY_ID (default `d1`): the `kid` of delegations signed with that key. */
  readonly delegationKeyId: string;
  /** AGENTMESH_DELEGATION_TTL (default 60s, at most 300s): how long a minted delegation can be redeemed. */
  readonly delegationTtlSeconds: number;
  /**
   * Per-tenant request rate limit of each gateway instance (token bucket over every authenticated
   * REST and gRPC call of the tenant's keys): `perSecond` (AGENTMESH_TENANT_RATE, default 500; 0
   * turns it off) tokens refill per second up to `burst` (AGENTMESH_TENANT_BURST, default 1000).
   * N gateway instances admit up to N times this rate.
   */
  readonly tenantRateLimit: { readonly perSecond: number; readonly burst: number };
  /** AGENTMESH_TENANT_MAX_CONCURRENT_RUNS (default 500; 0: no cap): admitted, not yet ended runs per tenant. */
  readonly maxConcurrentRunsPerTenant: number;
  /**
   * AGENTMESH_PLANNER_TIMEOUT (default 30s): how long the orchestrator waits for an external
   * planner's answer before the run waits and asks again later.
   */
  readonly plannerTimeoutMs: number;
  /**
   * AGENTMESH_LLM_TIMEOUT (default 130s): how long the orchestrator waits for one `inference.chat`
   * call of a run (react and planner LLM steps) before it retries it later.
   */
  readonly llmTimeoutMs: number;
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
    ...credentialBrokerConfig(r),
    tenantRateLimit: Object.freeze({
      perSecond: r.int('AGENTMESH_TENANT_RATE', 500, 0, 1_000_000),
      burst: r.int('AGENTMESH_TENANT_BURST', 1000, 1, 10_000_000),
    }),
    maxConcurrentRunsPerTenant: r.int('AGENTMESH_TENANT_MAX_CONCURRENT_RUNS', 500, 0, 1_000_000),
    plannerTimeoutMs: r.duration('AGENTMESH_PLANNER_TIMEOUT', '30s'),
    llmTimeoutMs: r.duration('AGENTMESH_LLM_TIMEOUT', '130s'),
  };
  if (service === 'inference-router') (cfg as { inference?: InferenceConfig }).inference = readInferenceConfig(r, env);
  if (cfg.ackWaitMs < 1000) r.problems.push('AGENTMESH_ACK_WAIT must be at least 1s');
  if (cfg.plannerTimeoutMs < 100) r.problems.push('AGENTMESH_PLANNER_TIMEOUT must be at least 100ms');
  if (cfg.llmTimeoutMs < 1000) r.problems.push('AGENTMESH_LLM_TIMEOUT must be at least 1s');
  if (r.problems.length) throw new ConfigError(r.problems);
  return Object.freeze(cfg);
}

/** The credential-broker's keys and delegation settings (see AppConfig). Never quotes key material. */
function credentialBrokerConfig(r: Reader): Pick<AppConfig, 'masterKeys' | 'delegationSigningKey' | 'delegationKeyId' | 'delegationTtlSeconds'> {
  const keys = r.optional('AGENTMESH_MASTER_KEYS');
  const active = r.optional('AGENTMESH_MASTER_KEY_ACTIVE');
  let masterKeys: MasterKeysConfig | undefined;
  if (keys !== undefined) {
    const parsed = parseMasterKeys(keys, active);
    r.problems.push(...parsed.problems);
    masterKeys = parsed.value;
  } else if (active !== undefined) {
    r.problems.push('AGENTMESH_MASTER_KEY_ACTIVE is set but AGENTMESH_MASTER_KEYS is not');
  }
  const pem = r.optional('AGENTMESH_DELEGATION_SIGNING_KEY')?.replace(/\\n/g, '\n').trim();
  if (pem !== undefined && !/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----$/.test(pem)) {
    r.problems.push('AGENTMESH_DELEGATION_SIGNING_KEY must be a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)');
  }
  const delegationKeyId = r.str('AGENTMESH_DELEGATION_KEY_ID', 'd1');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(delegationKeyId)) {
    r.problems.push('AGENTMESH_DELEGATION_KEY_ID must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}');
  }
  const ttlMs = r.duration('AGENTMESH_DELEGATION_TTL', '60s');
  if (ttlMs > 0 && (ttlMs % 1000 !== 0 || ttlMs < 1000 || ttlMs > 300_000)) {
    r.problems.push('AGENTMESH_DELEGATION_TTL must be whole seconds between 1s and 300s');
  }
  return {
    masterKeys,
    delegationSigningKey: pem === undefined ? undefined : new ConfigSecret(pem),
    delegationKeyId,
    delegationTtlSeconds: Math.min(300, Math.max(1, Math.round(ttlMs / 1000))) || 60,
  };
}

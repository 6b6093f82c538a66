/**
 * The inference-router's configuration: replicas (AGENTMESH_REPLICAS), provider keys
 * (AGENTMESH_PROVIDER_KEYS), model routing (AGENTMESH_MODEL_ROUTING), the service token
 * (AGENTMESH_INFERENCE_TOKEN) and the router's knobs. Read only for the inference-router.
 *
 * AGENTMESH_REPLICAS is a JSON array; each replica speaks the OpenAI chat completions API
 * (`kind: "openai"`: vLLM, SGLang, llama.cpp server, OpenAI) or Anthropic's Messages API:
 *
 * ```json
 * [
 *   { "id": "vllm-a", "url": "http://10.0.0.5:8000", "models": ["llama-3.1-70b"], "capacity": 48 },
 *   { "id": "vllm-b", "url": "http://10.0.0.6:8000", "models": ["llama-3.1-70b"], "capacity": 48, "weight": 2 },
 *   { "id": "openai", "url": "https://api.openai.com", "models": ["gpt-4o", "gpt-4o-mini"], "apiKeyRef": "openai", "health": "/v1/models" },
 *   { "id": "anthropic", "url": "https://api.anthropic.com", "kind": "anthropic", "models": ["claude-sonnet-4"], "apiKey": "sk-ant-..." }
 * ]
 * ```
 *
 * `capacity` is the most sessions pinned to the replica per model (omitted or null: unlimited);
 * `weight` its relative size; `health` the path polled (default `/health`; `none` for hosted APIs,
 * which are then judged by their answers only); `models` may contain `*` (any model). Secrets:
 * `apiKey` inline, or `apiKeyRef` naming an entry of AGENTMESH_PROVIDER_KEYS (`{"openai": "sk-..."}`);
 * the replica list shown by the admin API and stored in KV never contains a key.
 */
import { DEFAULT_MODEL_RULES, POLICY_NAMES, type ModelRule, type ModelTier, type PolicyName } from '#libs/routing';
import { ConfigSecret } from './secrets.js';

export type ReplicaKind = 'openai' | 'anthropic';

/** One upstream replica, as configured (no secret: the key is found by `apiKeyRef`). */
export interface ReplicaSpec {
  readonly id: string;
  readonly url: string;
  readonly kind: ReplicaKind;
  readonly models: readonly string[];
  /** Sessions pinned per model pool; null: unlimited. */
  readonly capacity: number | null;
  readonly weight: number;
  /** A key of InferenceConfig.providerKeys. */
  readonly apiKeyRef?: string;
  /** Path polled for health, or `none`. */
  readonly health: string;
}

export interface ModelRoutingSettings {
  readonly cheapModel: string;
  readonly frontierModel: string;
  readonly rules: readonly ModelRule[];
  readonly fallback: ModelTier;
}

export interface SimulatorSettings {
  /** AGENTMESH_SIM_REPLICAS (default 3): simulators started when AGENTMESH_REPLICAS is unset. */
  readonly count: number;
  /** AGENTMESH_SIM_CAPACITY (default 64): sessions per simulator and model. */
  readonly capacity: number;
  /** AGENTMESH_SIM_TIME_SCALE (default 1): real ms per simulated ms (0.05 runs 20x faster). */
  readonly timeScale: number;
  /** AGENTMESH_SIM_ZERO_LATENCY (default false): no prefill or decode time at all (benchmarks). */
  readonly zeroLatency: boolean;
  /**
   * AGENTMESH_SIM_SCRIPT (optional): a JSON file of scripted replies (rules matching the last user
   * or tool message, answering with content or tool calls); unmatched prompts get filler text.
   */
  readonly script?: string;
}

export interface InferenceConfig {
  /** AGENTMESH_REPLICAS; undefined: none configured, the router starts simulators. */
  readonly replicas: readonly ReplicaSpec[] | undefined;
  /** Secrets by name: AGENTMESH_PROVIDER_KEYS plus inline `apiKey`s (as `replica:<id>`). */
  readonly providerKeys: Readonly<Record<string, ConfigSecret>>;
  /** AGENTMESH_MODEL_ROUTING; undefined: derived from the replicas (see the router). */
  readonly modelRouting: ModelRoutingSettings | undefined;
  /** AGENTMESH_INFERENCE_TOKEN; undefined: read from (or generated into) `<data>/inference.token`. */
  readonly token: ConfigSecret | undefined;
  /** AGENTMESH_ROUTER_LOAD_FACTOR (default 1.25): the bounded-load factor c. */
  readonly loadFactor: number;
  /**
   * AGENTMESH_ROUTER_POLICY (default `bounded-sticky`): how sessions are placed. `round-robin`,
   * `least-loaded` and `consistent-hash` (no pins, no capacity, no admission) exist to benchmark against.
   */
  readonly policy: PolicyName;
  /** AGENTMESH_ROUTER_PIN_TTL (default 10m): how long a session keeps its replica after its last turn. */
  readonly pinTtlMs: number;
  /** AGENTMESH_ROUTER_PIN_GC (default 1h, ≥ the TTL): pins idle this long are dropped (and their KV keys). */
  readonly pinGcMs: number;
  /** AGENTMESH_ROUTER_ADMISSION_WAIT (default 2s): how long a new session waits for room before 429. */
  readonly admissionWaitMs: number;
  /** AGENTMESH_ROUTER_ADMISSION_QUEUE (default 1000): sessions waiting at most; more get 429 at once. */
  readonly admissionQueue: number;
  /** AGENTMESH_ROUTER_HEALTH_INTERVAL (default 2s) and AGENTMESH_ROUTER_HEALTH_TIMEOUT (default 1s). */
  readonly healthIntervalMs: number;
  readonly healthTimeoutMs: number;
  /** AGENTMESH_UPSTREAM_TIMEOUT (default 120s): longest call to a replica. */
  readonly upstreamTimeoutMs: number;
  /** AGENTMESH_INFERENCE_MAX_BODY_BYTES (default 8 MiB): largest /v1/chat/completions body. */
  readonly maxBodyBytes: number;
  readonly simulators: SimulatorSettings;
}

type Env = Record<string, string | undefined>;

const REPLICA_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const KEY_REF = /^[A-Za-z0-9][A-Za-z0-9_:.-]{0,127}$/;
const REPLICA_KEYS = new Set(['id', 'url', 'kind', 'models', 'capacity', 'weight', 'apiKey', 'apiKeyRef', 'health']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validates one replica definition (from AGENTMESH_REPLICAS or the admin API). `where` prefixes
 * problems. An inline `apiKey` is returned apart, never inside the spec.
 */
export function parseReplicaSpec(input: unknown, where: string, opts: { allowInlineKey?: boolean; id?: string } = {}): { spec?: ReplicaSpec; apiKey?: string; problems: string[] } {
  const problems: string[] = [];
  if (!isRecord(input)) return { problems: [`${where} must be an object`] };
  for (const k of Object.keys(input)) if (!REPLICA_KEYS.has(k)) problems.push(`${where}: unknown key "${k}"`);
  const id = input.id ?? opts.id;
  if (typeof id !== 'string' || !REPLICA_ID.test(id)) problems.push(`${where}.id must match ${REPLICA_ID.source}`);
  if (opts.id !== undefined && input.id !== undefined && input.id !== opts.id) problems.push(`${where}.id does not match the path`);
  let url = '';
  if (typeof input.url !== 'string') problems.push(`${where}.url must be an http(s) URL`);
  else {
    try {
      const u = new URL(input.url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
      if (u.username || u.password) problems.push(`${where}.url must not carry credentials (use apiKey or apiKeyRef)`);
      url = input.url.replace(/\/+$/, '');
    } catch {
      problems.push(`${where}.url must be an http(s) URL`);
    }
  }
  const kind = input.kind ?? 'openai';
  if (kind !== 'openai' && kind !== 'anthropic') problems.push(`${where}.kind must be openai or anthropic`);
  const models = input.models;
  if (!Array.isArray(models) || models.length === 0 || !models.every((m) => typeof m === 'string' && m.length > 0 && m.length <= 200)) {
    problems.push(`${where}.models must be a non-empty array of model names`);
  }
  const capacity = input.capacity ?? null;
  if (capacity !== null && !(Number.isInteger(capacity) && (capacity as number) >= 0)) problems.push(`${where}.capacity must be a non-negative integer or null`);
  const weight = input.weight ?? 1;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0 || weight > 100) problems.push(`${where}.weight must be a number in (0, 100]`);
  const health = input.health ?? '/health';
  if (typeof health !== 'string' || !(health === 'none' || /^\/[^\s]*$/.test(health))) problems.push(`${where}.health must be a path starting with / or "none"`);
  let apiKey: string | undefined;
  if (input.apiKey !== undefined) {
    if (!opts.allowInlineKey) problems.push(`${where}.apiKey is not accepted here; name a provider key with apiKeyRef`);
    else if (typeof input.apiKey !== 'string' || input.apiKey === '') problems.push(`${where}.apiKey must be a non-empty string`);
    else apiKey = input.apiKey;
  }
  let apiKeyRef: string | undefined;
  if (input.apiKeyRef !== undefined) {
    if (typeof input.apiKeyRef !== 'string' || !KEY_REF.test(input.apiKeyRef)) problems.push(`${where}.apiKeyRef must match ${KEY_REF.source}`);
    else apiKeyRef = input.apiKeyRef;
    if (apiKey !== undefined) problems.push(`${where}: give apiKey or apiKeyRef, not both`);
  }
  if (problems.length > 0) return { problems };
  const rid = id as string;
  const spec: ReplicaSpec = Object.freeze({
    id: rid,
    url,
    kind: kind as ReplicaKind,
    models: Object.freeze([...(models as string[])]),
    capacity: capacity as number | null,
    weight: weight as number,
    health: health as string,
    ...(apiKey !== undefined ? { apiKeyRef: `replica:${rid}` } : apiKeyRef !== undefined ? { apiKeyRef } : {}),
  });
  return { spec, apiKey, problems };
}

function parseJson(raw: string | undefined, key: string, problems: string[]): unknown {
  if (raw === undefined || raw.trim() === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    problems.push(`${key} must be JSON`);
    return undefined;
  }
}

/** Parses AGENTMESH_REPLICAS and AGENTMESH_PROVIDER_KEYS. */
export function parseReplicas(rawReplicas: string | undefined, rawKeys: string | undefined): { replicas: ReplicaSpec[] | undefined; providerKeys: Record<string, ConfigSecret>; problems: string[] } {
  const problems: string[] = [];
  const providerKeys: Record<string, ConfigSecret> = {};
  const keys = parseJson(rawKeys, 'AGENTMESH_PROVIDER_KEYS', problems);
  if (keys !== undefined) {
    if (!isRecord(keys)) problems.push('AGENTMESH_PROVIDER_KEYS must be a JSON object of name → key');
    else for (const [name, v] of Object.entries(keys)) {
      if (!KEY_REF.test(name) || name.startsWith('replica:')) problems.push(`AGENTMESH_PROVIDER_KEYS: bad name "${name}"`);
      else if (typeof v !== 'string' || v === '') problems.push(`AGENTMESH_PROVIDER_KEYS.${name} must be a non-empty string`);
      else providerKeys[name] = new ConfigSecret(v);
    }
  }
  const list = parseJson(rawReplicas, 'AGENTMESH_REPLICAS', problems);
  if (list === undefined) return { replicas: undefined, providerKeys, problems };
  if (!Array.isArray(list) || list.length === 0) {
    problems.push('AGENTMESH_REPLICAS must be a non-empty JSON array of replicas');
    return { replicas: undefined, providerKeys, problems };
  }
  const replicas: ReplicaSpec[] = [];
  const ids = new Set<string>();
  list.forEach((item, i) => {
    const r = parseReplicaSpec(item, `AGENTMESH_REPLICAS[${i}]`, { allowInlineKey: true });
    problems.push(...r.problems);
    if (!r.spec) return;
    if (ids.has(r.spec.id)) problems.push(`AGENTMESH_REPLICAS[${i}].id "${r.spec.id}" is repeated`);
    ids.add(r.spec.id);
    if (r.apiKey !== undefined) providerKeys[`replica:${r.spec.id}`] = new ConfigSecret(r.apiKey);
    else if (r.spec.apiKeyRef !== undefined && providerKeys[r.spec.apiKeyRef] === undefined) {
      problems.push(`AGENTMESH_REPLICAS[${i}].apiKeyRef "${r.spec.apiKeyRef}" is not in AGENTMESH_PROVIDER_KEYS`);
    }
    replicas.push(r.spec);
  });
  return { replicas, providerKeys, problems };
}

/**
 * Parses AGENTMESH_MODEL_ROUTING: `{"cheapModel": "...", "frontierModel": "...", "rules": [...],
 * "fallback": "cheap"|"frontier"}`; rules default to libs/routing's DEFAULT_MODEL_RULES, fallback to
 * frontier. Rule semantics are checked by the router (validateModelRouting).
 */
export function parseModelRouting(raw: string | undefined): { routing: ModelRoutingSettings | undefined; problems: string[] } {
  const problems: string[] = [];
  const v = parseJson(raw, 'AGENTMESH_MODEL_ROUTING', problems);
  if (v === undefined) return { routing: undefined, problems };
  if (!isRecord(v)) return { routing: undefined, problems: ['AGENTMESH_MODEL_ROUTING must be a JSON object'] };
  for (const k of Object.keys(v)) if (!['cheapModel', 'frontierModel', 'rules', 'fallback'].includes(k)) problems.push(`AGENTMESH_MODEL_ROUTING: unknown key "${k}"`);
  if (typeof v.cheapModel !== 'string' || v.cheapModel === '') problems.push('AGENTMESH_MODEL_ROUTING.cheapModel must be a model name');
  if (typeof v.frontierModel !== 'string' || v.frontierModel === '') problems.push('AGENTMESH_MODEL_ROUTING.frontierModel must be a model name');
  const fallback = v.fallback ?? 'frontier';
  if (fallback !== 'cheap' && fallback !== 'frontier') problems.push('AGENTMESH_MODEL_ROUTING.fallback must be cheap or frontier');
  const rules = v.rules ?? DEFAULT_MODEL_RULES;
  if (!Array.isArray(rules) || !rules.every((r) => isRecord(r) && typeof r.name === 'string' && isRecord(r.when) && (r.use === 'cheap' || r.use === 'frontier'))) {
    problems.push('AGENTMESH_MODEL_ROUTING.rules must be an array of {name, when, use: cheap|frontier}');
  }
  if (problems.length > 0) return { routing: undefined, problems };
  return {
    routing: Object.freeze({ cheapModel: v.cheapModel as string, frontierModel: v.frontierModel as string, rules: rules as ModelRule[], fallback: fallback as ModelTier }),
    problems,
  };
}

/** The reading helpers of config.ts that the inference settings use. */
export interface InferenceEnvReader {
  readonly problems: string[];
  optional(key: string): string | undefined;
  int(key: string, fallback: number, min?: number, max?: number): number;
  duration(key: string, fallback: string): number;
  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T;
}

function number(r: InferenceEnvReader, env: Env, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    r.problems.push(`${key}=${JSON.stringify(raw)} must be a number in [${min}, ${max}]`);
    return fallback;
  }
  return n;
}

export function readInferenceConfig(r: InferenceEnvReader, env: Env): InferenceConfig {
  const rep = parseReplicas(r.optional('AGENTMESH_REPLICAS'), r.optional('AGENTMESH_PROVIDER_KEYS'));
  r.problems.push(...rep.problems);
  const mr = parseModelRouting(r.optional('AGENTMESH_MODEL_ROUTING'));
  r.problems.push(...mr.problems);
  const token = r.optional('AGENTMESH_INFERENCE_TOKEN');
  if (token !== undefined && token.length < 16) r.problems.push('AGENTMESH_INFERENCE_TOKEN must be at least 16 characters');
  const cfg: InferenceConfig = {
    replicas: rep.replicas,
    providerKeys: Object.freeze(rep.providerKeys),
    modelRouting: mr.routing,
    token: token === undefined ? undefined : new ConfigSecret(token),
    loadFactor: number(r, env, 'AGENTMESH_ROUTER_LOAD_FACTOR', 1.25, 1, 100),
    policy: r.oneOf('AGENTMESH_ROUTER_POLICY', POLICY_NAMES, 'bounded-sticky'),
    pinTtlMs: r.duration('AGENTMESH_ROUTER_PIN_TTL', '10m'),
    pinGcMs: r.duration('AGENTMESH_ROUTER_PIN_GC', '1h'),
    admissionWaitMs: r.duration('AGENTMESH_ROUTER_ADMISSION_WAIT', '2s'),
    admissionQueue: r.int('AGENTMESH_ROUTER_ADMISSION_QUEUE', 1000, 0, 1_000_000),
    healthIntervalMs: r.duration('AGENTMESH_ROUTER_HEALTH_INTERVAL', '2s'),
    healthTimeoutMs: r.duration('AGENTMESH_ROUTER_HEALTH_TIMEOUT', '1s'),
    upstreamTimeoutMs: r.duration('AGENTMESH_UPSTREAM_TIMEOUT', '120s'),
    maxBodyBytes: r.int('AGENTMESH_INFERENCE_MAX_BODY_BYTES', 8 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    simulators: Object.freeze({
      count: r.int('AGENTMESH_SIM_REPLICAS', 3, 1, 64),
      capacity: r.int('AGENTMESH_SIM_CAPACITY', 64, 0, 1_000_000),
      timeScale: number(r, env, 'AGENTMESH_SIM_TIME_SCALE', 1, 0.0001, 1000),
      zeroLatency: r.oneOf('AGENTMESH_SIM_ZERO_LATENCY', ['true', 'false'] as const, 'false') === 'true',
      ...(r.optional('AGENTMESH_SIM_SCRIPT') ? { script: r.optional('AGENTMESH_SIM_SCRIPT') } : {}),
    }),
  };
  if (cfg.pinTtlMs <= 0) r.problems.push('AGENTMESH_ROUTER_PIN_TTL must be positive');
  if (cfg.pinGcMs < cfg.pinTtlMs) r.problems.push('AGENTMESH_ROUTER_PIN_GC must be at least AGENTMESH_ROUTER_PIN_TTL');
  if (cfg.healthIntervalMs < 100) r.problems.push('AGENTMESH_ROUTER_HEALTH_INTERVAL must be at least 100ms');
  if (cfg.healthTimeoutMs < 10) r.problems.push('AGENTMESH_ROUTER_HEALTH_TIMEOUT must be at least 10ms');
  if (cfg.upstreamTimeoutMs < 100) r.problems.push('AGENTMESH_UPSTREAM_TIMEOUT must be at least 100ms');
  return Object.freeze(cfg);
}

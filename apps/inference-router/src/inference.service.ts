import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AgentmeshError, BUCKETS, invalid, newUlid,
  type FinishReason, type InferenceUsage, type ModelHint,
} from '#libs/contracts';
import { llmCostUsd, type AppConfig, type InferenceConfig, type ReplicaSpec } from '#libs/config';
import { CONFIG, LOGGER, NATS, openBucket, RpcClient } from '#libs/messaging';
import { chooseModel, DEFAULT_MODEL_RULES, validateModelRouting, type ModelRoutingConfig, type RouteAccepted } from '#libs/routing';
import type { Logger } from '#libs/telemetry';
import { AdmissionQueue, AdmissionRefusedError, systemClock, type Clock } from './admission.js';
import { AssignmentStore } from './assignments.js';
import { ServiceToken } from './auth.js';
import { routerMetrics } from './metrics.js';
import { ModelPools } from './pools.js';
import { ReplicaRegistry, type ReplicaSource } from './replicas.js';
import { SIM_CHEAP_MODEL, SIM_FRONTIER_MODEL, startSimulators, type Simulators } from './simulators.js';
import { countCompletionTokens, countPromptTokens, estimatePromptTokens } from '#libs/tokens';
import { callReplica } from './upstream/client.js';
import { UpstreamError } from './upstream/http.js';
import type { ChatChunk, ChatCompletion, ChatCompletionRequest } from './upstream/types.js';
import { UsageBatcher } from './usage-batcher.js';

/** One chat call, from the HTTP endpoint or the `inference.chat` RPC. */
export interface ChatInput {
  readonly tenantId: string;
  /** The affinity key; without one the call gets a one-off pin released when it ends. */
  readonly session?: string;
  readonly runId?: string;
  readonly step?: number;
  /** The key the caller reserved the worst case under: the router settles the actual cost with it. */
  readonly callKey?: string;
  readonly agent?: string;
  /** An exact model, or undefined / `auto` to let `hint` and the rules choose. */
  readonly model?: string;
  readonly hint?: ModelHint;
  readonly request: ChatCompletionRequest;
  readonly stream: boolean;
  readonly onChunk?: (chunk: ChatChunk) => void;
  /** Called once the replica is chosen, before the call. */
  readonly onPlaced?: (p: { replica: string; placement: RouteAccepted['outcome']; model: string }) => void;
  readonly signal?: AbortSignal;
  /** Wait for the cost-governor's settlement (RPC callers want `settled`); HTTP calls do not wait. */
  readonly awaitSettle?: boolean;
}

export interface ChatOutput {
  readonly id: string;
  /** The final completion; its usage is filled in when the replica gave none. */
  readonly completion: ChatCompletion;
  readonly model: string;
  readonly tier: 'cheap' | 'frontier' | 'explicit';
  readonly rule: string;
  readonly replica: string;
  readonly placement: RouteAccepted['outcome'];
  readonly finishReason: FinishReason;
  readonly usage: InferenceUsage;
  readonly costUsd: number;
  readonly settled?: { usd: number; replayed: boolean };
  readonly timing: { queuedMs: number; firstTokenMs: number; totalMs: number; upstreamMs: number; routerMs: number };
}

/** The sweep of idle pins runs this often (at most). */
const SWEEP_EVERY_MS = 60_000;

/**
 * The inference router: model choice, session placement (sticky, bounded loads, admission),
 * the call to the replica with failover, token accounting and cost reporting.
 */
@Injectable()
export class InferenceService implements OnModuleInit, OnModuleDestroy {
  readonly settings: InferenceConfig;
  readonly pools: ModelPools;
  readonly clock: Clock;
  registry!: ReplicaRegistry;
  admission!: AdmissionQueue;
  token!: ServiceToken;
  routing: ModelRoutingConfig | undefined;
  private store?: AssignmentStore;
  private sims?: Simulators;
  private readonly rpc: RpcClient;
  private readonly usage: UsageBatcher;
  private sweepTimer?: NodeJS.Timeout;
  private roomScheduled = false;
  private lastNow = 0;
  private ready = false;

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    if (config.inference === undefined) throw new Error('the inference-router needs its configuration (loadConfig for inference-router)');
    this.settings = config.inference;
    this.rpc = new RpcClient(nc, 5000);
    this.usage = new UsageBatcher(nc, logger);
    // wall-clock milliseconds (pins survive restarts) that never go backwards (the LRU order is the touch order)
    const now = (): number => {
      const t = Date.now();
      if (t > this.lastNow) this.lastNow = t;
      return this.lastNow;
    };
    this.clock = { ...systemClock, now };
    this.pools = new ModelPools(
      { ttlMs: this.settings.pinTtlMs, loadFactor: this.settings.loadFactor, policy: this.settings.policy },
      {
        pinned: (model, tenantId, session, view, outcome) => {
          this.store?.pinned(model, tenantId, session, view, outcome);
          if (outcome !== 'hit') this.updateLoads();
        },
        released: (model, tenantId, session) => {
          this.store?.released(model, tenantId, session);
          this.updateLoads();
          this.roomSoon();
        },
      },
    );
  }

  async onModuleInit(): Promise<void> {
    const s = this.settings;
    this.token = ServiceToken.load(this.config, this.logger);
    this.admission = new AdmissionQueue({ maxWaitMs: s.admissionWaitMs, maxQueue: s.admissionQueue, clock: this.clock });
    let initial: Array<{ spec: ReplicaSpec; source: ReplicaSource }>;
    if (s.replicas !== undefined) {
      initial = s.replicas.map((spec) => ({ spec, source: 'config' as const }));
    } else {
      this.sims = await startSimulators(s.simulators);
      initial = this.sims.specs.map((spec) => ({ spec, source: 'simulator' as const }));
      this.logger.warn(
        { simulators: this.sims.specs.map((x) => ({ id: x.id, url: x.url })), models: [SIM_FRONTIER_MODEL, SIM_CHEAP_MODEL] },
        `AGENTMESH_REPLICAS is not set: routing to ${this.sims.specs.length} in-process replica SIMULATORS (not real models; replies are filler text${s.simulators.script ? ', or scripted by AGENTMESH_SIM_SCRIPT' : ''})`,
      );
    }
    this.routing = this.modelRouting(initial.map((i) => i.spec));
    const [assignmentsKv, replicasKv] = await Promise.all([openBucket(this.nc, BUCKETS.assignments), openBucket(this.nc, BUCKETS.replicas)]);
    this.registry = new ReplicaRegistry(this.pools, replicasKv, s.providerKeys, this.logger, () => this.roomSoon());
    await this.registry.start(initial);
    this.store = new AssignmentStore(assignmentsKv, this.logger, Math.max(1, Math.floor(s.pinTtlMs / 10)));
    const restored = this.pools.restore(await this.store.loadAll());
    this.updateLoads();
    this.registry.startHealthChecks(s.healthIntervalMs, s.healthTimeoutMs);
    const sweepEvery = Math.min(SWEEP_EVERY_MS, Math.max(1000, Math.floor(s.pinTtlMs / 2)));
    this.sweepTimer = setInterval(() => this.sweep(), sweepEvery);
    this.sweepTimer.unref();
    this.ready = true;
    this.logger.info(
      { replicas: this.registry.list().map((r) => ({ id: r.id, kind: r.kind, models: r.models, capacity: r.capacity })), restoredPins: restored, policy: s.policy, loadFactor: s.loadFactor, pinTtlMs: s.pinTtlMs, routing: this.routing ? { cheap: this.routing.cheapModel, frontier: this.routing.frontierModel } : null },
      'inference router started',
    );
  }

  async onModuleDestroy(): Promise<void> {
    this.ready = false;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.admission?.close();
    this.registry?.stop();
    await Promise.race([this.usage.flush(), new Promise((r) => setTimeout(r, 2000).unref())]);
    await this.store?.close();
    await this.sims?.close();
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** Writes every queued pin to KV (tests, shutdown). */
  async flush(): Promise<void> {
    await this.store?.flush();
  }

  /** The simulators started in this process (none when replicas are configured). */
  get simulators(): Simulators | undefined {
    return this.sims;
  }

  /** Models a client may name (plus `auto`). */
  models(): string[] {
    const out = new Set<string>();
    for (const r of this.registry.list()) for (const m of r.models) if (m !== '*') out.add(m);
    return [...out].sort();
  }

  /** Releases a session's pins (all models); returns how many. */
  release(tenantId: string, session: string): number {
    return this.pools.release(tenantId, session);
  }

  async chat(input: ChatInput): Promise<ChatOutput> {
    const t0 = performance.now();
    const choice = this.chooseModel(input);
    const { model } = choice;
    const ephemeral = input.session === undefined;
    const session = input.session ?? `x${newUlid()}`;
    const maxAttempts = Math.max(1, Math.min(3, this.pools.servingCount(model)));
    let emitted = false;
    const onChunk = input.onChunk
      ? (c: ChatChunk) => {
          emitted = true;
          input.onChunk!(c);
        }
      : undefined;
    let queuedMs = 0;
    let upstreamMs = 0;
    try {
      for (let attempt = 1; ; attempt++) {
        const placed = await this.place(model, input.tenantId, session, input.signal);
        queuedMs += placed.queuedMs;
        const target = this.registry.target(placed.replica);
        if (target === undefined) {
          // removed between placement and now: its pin moves on the next try
          if (attempt >= maxAttempts) throw new AgentmeshError('unavailable', 'no replica could take the call');
          continue;
        }
        input.onPlaced?.({ replica: placed.replica, placement: placed.outcome, model });
        const tUp = performance.now();
        try {
          const result = await callReplica({
            target, model, request: input.request, stream: input.stream, onChunk, timeoutMs: this.settings.upstreamTimeoutMs, signal: input.signal,
          });
          const tDone = performance.now();
          upstreamMs += tDone - tUp;
          this.pools.done(model, input.tenantId, session, placed.replica, this.clock.now());
          return await this.finish(input, choice, placed, result.completion, {
            queuedMs, firstTokenMs: result.firstTokenAt - t0, upstreamMs, t0, tDone,
          });
        } catch (e) {
          upstreamMs += performance.now() - tUp;
          this.pools.done(model, input.tenantId, session, placed.replica, this.clock.now());
          if (e instanceof UpstreamError && e.replicaFault && !emitted && !input.signal?.aborted) {
            this.registry.markDown(placed.replica, e.message);
            if (attempt < maxAttempts) {
              this.logger.warn({ replica: placed.replica, model, attempt, err: e.message }, 'replica failed a call; trying the session elsewhere');
              continue;
            }
          }
          throw upstreamToPlatform(e);
        }
      }
    } finally {
      if (ephemeral) this.pools.release(input.tenantId, session, model);
    }
  }

  /** Places a turn (waiting for room when the pool is full) and counts it. */
  private async place(model: string, tenantId: string, session: string, signal?: AbortSignal): Promise<RouteAccepted & { queuedMs: number }> {
    try {
      const d = await this.admission.admit((now) => this.pools.route(model, tenantId, session, now), signal);
      routerMetrics.assignments.inc({ replica: d.replica, outcome: d.outcome });
      if (d.outcome === 'hit') routerMetrics.affinityHits.inc({ replica: d.replica });
      return d;
    } catch (e) {
      if (!(e instanceof AdmissionRefusedError)) throw e;
      routerMetrics.assignments.inc({ replica: 'none', outcome: 'refused' });
      const retryAfterSeconds = Math.max(1, Math.ceil(e.retryAfterMs / 1000));
      if (e.reason === 'no_replicas') throw new AgentmeshError('unavailable', `no replica serving ${model} is up`, { retryAfterSeconds, reason: 'no_replicas' });
      if (e.reason === 'cancelled') throw new AgentmeshError('unavailable', e.message, { reason: 'cancelled' });
      throw new AgentmeshError('resource_exhausted', `every replica serving ${model} is full; retry later`, { retryAfterSeconds, reason: 'replicas_full' });
    }
  }

  private chooseModel(input: ChatInput): { model: string; tier: ChatOutput['tier']; rule: string } {
    if (input.model !== undefined && input.model !== 'auto') {
      if (!this.pools.serves(input.model)) throw new AgentmeshError('not_found', `model ${input.model} is not served by any replica`, { reason: 'model_not_found' });
      return { model: input.model, tier: 'explicit', rule: 'explicit' };
    }
    if (this.routing === undefined) throw invalid('name a model: no model routing (AGENTMESH_MODEL_ROUTING) is configured');
    const c = chooseModel({ hint: input.hint, promptTokens: estimatePromptTokens(input.request.messages, input.request.tools), toolCount: input.request.tools?.length ?? 0 }, this.routing);
    if (!this.pools.serves(c.model)) throw new AgentmeshError('not_found', `model ${c.model} (${c.tier}) is not served by any replica`, { reason: 'model_not_found' });
    return c;
  }

  private async finish(
    input: ChatInput,
    choice: { model: string; tier: ChatOutput['tier']; rule: string },
    placed: RouteAccepted & { queuedMs: number },
    completion: ChatCompletion,
    t: { queuedMs: number; firstTokenMs: number; upstreamMs: number; t0: number; tDone: number },
  ): Promise<ChatOutput> {
    const { model } = choice;
    const message = completion.choices[0].message;
    const u = completion.usage;
    let usage: InferenceUsage;
    if (u && Number.isFinite(u.prompt_tokens) && Number.isFinite(u.completion_tokens)) {
      usage = { inputTokens: u.prompt_tokens, outputTokens: u.completion_tokens, cachedTokens: u.prompt_tokens_details?.cached_tokens ?? 0, source: 'upstream' };
    } else {
      const [inputTokens, outputTokens] = await Promise.all([
        countPromptTokens(model, input.request.messages, input.request.tools),
        countCompletionTokens(model, message),
      ]);
      usage = { inputTokens, outputTokens, cachedTokens: 0, source: 'tokenizer' };
      completion.usage = { prompt_tokens: inputTokens, completion_tokens: outputTokens, total_tokens: inputTokens + outputTokens };
    }
    const costUsd = llmCostUsd(this.config.prices, model, usage);
    routerMetrics.tokens.inc({ tenant: input.tenantId, model, direction: 'input' }, usage.inputTokens);
    routerMetrics.tokens.inc({ tenant: input.tenantId, model, direction: 'output' }, usage.outputTokens);
    routerMetrics.cost.inc({ tenant: input.tenantId, model }, costUsd);
    const id = completion.id || `inf_${newUlid()}`;
    // HTTP answers go out first: the report's NATS traffic follows on the next turn of the event loop
    let settled: { usd: number; replayed: boolean } | undefined;
    if (input.awaitSettle) settled = await this.report(input, model, id, usage, costUsd);
    else setImmediate(() => void this.report(input, model, id, usage, costUsd));
    const tEnd = performance.now();
    return {
      id,
      completion,
      model,
      tier: choice.tier,
      rule: choice.rule,
      replica: placed.replica,
      placement: placed.outcome,
      finishReason: completion.choices[0].finish_reason ?? 'stop',
      usage,
      costUsd,
      ...(settled ? { settled } : {}),
      timing: {
        queuedMs: round(t.queuedMs),
        firstTokenMs: round(t.firstTokenMs),
        totalMs: round(tEnd - t.t0),
        upstreamMs: round(t.upstreamMs),
        routerMs: round(tEnd - t.t0 - t.upstreamMs - t.queuedMs),
      },
    };
  }

  /**
   * Reports the call's actual cost: with a call key, `budget.settle` (charges the reservation the
   * caller made under that key, records the call, publishes its usage event; idempotent);
   * without one, a usage event on AGENTMESH_USAGE like the governor's, published in batches every
   * 50 ms (metering only: nothing was reserved, so no budget is charged).
   */
  private async report(input: ChatInput, model: string, id: string, usage: InferenceUsage, usd: number): Promise<{ usd: number; replayed: boolean } | undefined> {
    const tokens = { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens };
    if (input.callKey !== undefined) {
      try {
        return await this.rpc.call('budget.settle', {
          tenantId: input.tenantId, callKey: input.callKey, usd, usage: tokens,
          call: { runId: input.runId ?? '', agent: input.agent ?? '', kind: 'llm', model },
        });
      } catch (err) {
        this.logger.warn({ err, tenant: input.tenantId, callKey: input.callKey }, 'could not settle the call with the cost-governor; the caller must settle it');
        return undefined;
      }
    }
    const callKey = `inference:${id.replace(/[^A-Za-z0-9_:.-]/g, '_').slice(0, 180)}`;
    this.usage.add({
      tenantId: input.tenantId, runId: input.runId ?? '', agent: input.agent ?? '', callKey, kind: 'llm', model, usd,
      inputTokens: tokens.inputTokens, outputTokens: tokens.outputTokens, at: new Date().toISOString(),
    });
    return undefined;
  }

  private modelRouting(specs: readonly ReplicaSpec[]): ModelRoutingConfig | undefined {
    const configured = this.settings.modelRouting;
    if (configured) return validateModelRouting({ ...configured, rules: [...configured.rules] });
    if (this.sims) return validateModelRouting({ cheapModel: SIM_CHEAP_MODEL, frontierModel: SIM_FRONTIER_MODEL, rules: DEFAULT_MODEL_RULES, fallback: 'frontier' });
    const first = specs.flatMap((s) => s.models).find((m) => m !== '*');
    if (first === undefined) return undefined;
    this.logger.info({ model: first }, 'AGENTMESH_MODEL_ROUTING is not set: every unnamed step uses the first configured model');
    return validateModelRouting({ cheapModel: first, frontierModel: first, rules: DEFAULT_MODEL_RULES, fallback: 'frontier' });
  }

  private sweep(): void {
    const n = this.pools.sweep(this.clock.now(), this.settings.pinGcMs);
    if (n > 0) this.logger.info({ released: n }, 'released idle session pins');
  }

  private updateLoads(): void {
    for (const r of this.pools.replicas()) routerMetrics.replicaLoad.set({ replica: r.id }, this.pools.load(r.id));
  }

  /** Lets waiting sessions try again, outside the routing call that freed the room. */
  private roomSoon(): void {
    if (this.roomScheduled) return;
    this.roomScheduled = true;
    setImmediate(() => {
      this.roomScheduled = false;
      this.admission?.notify();
    });
  }
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

/** An upstream failure as the platform reports it (never the replica's credentials or URL). */
export function upstreamToPlatform(e: unknown): unknown {
  if (!(e instanceof UpstreamError)) return e;
  const msg = upstreamMessage(e.body);
  switch (e.failure) {
    case 'aborted':
      return new AgentmeshError('unavailable', 'the call was cancelled', { reason: 'cancelled', cause: e });
    case 'timeout':
      return new AgentmeshError('unavailable', 'the replica did not answer in time', { reason: 'upstream_timeout', cause: e });
    case 'connect':
      return new AgentmeshError('unavailable', 'no replica could be reached', { reason: 'upstream_unreachable', cause: e });
    case 'protocol':
      return new AgentmeshError('unavailable', `the replica answered badly: ${e.message}`, { reason: 'upstream_protocol', cause: e });
    case 'status': {
      const s = e.status ?? 500;
      if (s === 429) return new AgentmeshError('rate_limited', `the replica is busy${msg ? `: ${msg}` : ''}`, { retryAfterSeconds: 1, reason: 'upstream_busy', cause: e });
      if (s === 401 || s === 403) return new AgentmeshError('internal', 'the replica refused the router\'s credentials', { reason: 'upstream_auth', cause: e });
      if (s === 400 || s === 404 || s === 413 || s === 422) return new AgentmeshError('invalid_argument', msg ? `the model refused the request: ${msg}` : `the replica rejected the request (HTTP ${s})`, { reason: upstreamCode(e.body) ?? 'upstream_rejected', cause: e });
      return new AgentmeshError('unavailable', `the replica failed (HTTP ${s})${msg ? `: ${msg}` : ''}`, { reason: 'upstream_failed', cause: e });
    }
  }
}

function upstreamMessage(body: unknown): string | undefined {
  const err = (body as { error?: { message?: unknown } } | undefined)?.error;
  const m = typeof err?.message === 'string' ? err.message : typeof body === 'string' ? body : undefined;
  return m?.slice(0, 500);
}

function upstreamCode(body: unknown): string | undefined {
  const err = (body as { error?: { code?: unknown; type?: unknown } } | undefined)?.error;
  const c = typeof err?.code === 'string' ? err.code : typeof err?.type === 'string' ? err.type : undefined;
  return c && /^[a-z0-9_]{1,64}$/.test(c) ? c : undefined;
}

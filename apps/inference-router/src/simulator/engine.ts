import { PrefixKvCache, type KvCacheStats, type KvLease } from './kv-cache.js';

/**
 * Timing and size of one simulated GPU replica. Defaults describe a 70B-class model with tensor
 * parallelism on a node of modern GPUs: prefill ~0.2 ms per uncached prompt token (~5k tokens/s),
 * ~30 ms per decode step, 32 sequences in the running batch, 256k tokens of KV cache.
 */
export interface ReplicaParams {
  /** Prefill time per uncached prompt token (ms). */
  readonly prefillMsPerToken: number;
  /** Fixed cost of a prefill step (ms). */
  readonly prefillOverheadMs: number;
  /** Time of one decode step, in which every running request emits one token (ms). */
  readonly decodeMsPerStep: number;
  /** Extra decode-step time per running request (ms), for batch-size sensitivity. */
  readonly decodeMsPerSeq: number;
  /** Requests in the running batch; later ones queue (FIFO). */
  readonly maxConcurrency: number;
  /** KV cache capacity (tokens). */
  readonly kvCacheTokens: number;
  /** Tokens per KV block. */
  readonly blockSize: number;
}

export const DEFAULT_REPLICA_PARAMS: ReplicaParams = Object.freeze({
  prefillMsPerToken: 0.2,
  prefillOverheadMs: 2,
  decodeMsPerStep: 28,
  decodeMsPerSeq: 0.1,
  maxConcurrency: 32,
  kvCacheTokens: 262_144,
  blockSize: 16,
});

export interface EngineRequest {
  readonly id: string;
  /** Chain keys of the prompt's full blocks (see PrefixKvCache). */
  readonly blockKeys: readonly number[];
  readonly promptTokens: number;
  /** Tokens to generate (≥ 1); the first comes out of the prefill step. */
  readonly outputTokens: number;
}

export interface PrefillInfo {
  readonly cachedTokens: number;
  readonly prefillTokens: number;
  /** Time from submit to the start of its prefill (queueing). */
  readonly queuedMs: number;
}

/** Callbacks, invoked from `advanceTo`, at model times. */
export interface EngineListener {
  /** The prefill finished: the first output token exists. */
  onPrefilled?(id: string, atMs: number, info: PrefillInfo): void;
  /** Output token `index` (0-based) was produced. */
  onToken?(id: string, index: number, atMs: number): void;
  onDone?(id: string, atMs: number): void;
}

export interface EngineStats {
  readonly requests: number;
  readonly completed: number;
  readonly cancelled: number;
  readonly running: number;
  readonly waiting: number;
  readonly peakWaiting: number;
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly prefillTokens: number;
  readonly outputTokens: number;
  /** cachedTokens / promptTokens over prefilled requests. */
  readonly cacheHitRate: number;
  readonly busyMs: number;
  readonly prefillBusyMs: number;
  readonly cache: KvCacheStats;
}

export class EngineRequestError extends Error {
  override readonly name = 'EngineRequestError';
  readonly code: 'CONTEXT_TOO_LONG' | 'DUPLICATE_ID' | 'INVALID_REQUEST';

  constructor(code: EngineRequestError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

interface Active {
  readonly req: EngineRequest;
  readonly submittedAtMs: number;
  lease?: KvLease;
  produced: number;
  cancelled: boolean;
}

type Step = { readonly kind: 'prefill'; readonly endMs: number; readonly active: Active } | { readonly kind: 'decode'; readonly endMs: number };

/**
 * One replica's scheduler as a pure state machine over model time, iteration by iteration like
 * vLLM's (v0) scheduler: when a queued request fits in the batch and the KV cache, a prefill step
 * runs for it alone (uncached tokens × prefillMsPerToken, stalling decodes); otherwise one decode
 * step gives every running request a token. Callers submit requests and call `advanceTo(now)`;
 * `nextEventAt()` says when the current step ends.
 */
export class ReplicaEngine {
  readonly params: ReplicaParams;
  readonly cache: PrefixKvCache;
  private readonly listener: EngineListener;
  private readonly waiting: Active[] = [];
  private readonly running = new Map<string, Active>();
  private readonly known = new Map<string, Active>();
  private readonly prefillInfo = new WeakMap<Active, PrefillInfo>();
  private step: Step | undefined;
  private counters = { requests: 0, completed: 0, cancelled: 0, promptTokens: 0, cachedTokens: 0, prefillTokens: 0, outputTokens: 0, busyMs: 0, prefillBusyMs: 0, peakWaiting: 0 };

  constructor(params: Partial<ReplicaParams> = {}, listener: EngineListener = {}) {
    this.params = { ...DEFAULT_REPLICA_PARAMS, ...params };
    const p = this.params;
    for (const [k, v] of Object.entries(p)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`replica parameter ${k} must be a finite non-negative number`);
    }
    if (!Number.isInteger(p.maxConcurrency) || p.maxConcurrency < 1) throw new RangeError('maxConcurrency must be a positive integer');
    this.cache = new PrefixKvCache({ capacityTokens: p.kvCacheTokens, blockSize: p.blockSize });
    this.listener = listener;
  }

  /** Largest prompt + output (tokens) this replica can ever hold. */
  get maxContextTokens(): number {
    return this.cache.capacityTokens;
  }

  get runningCount(): number {
    return this.running.size;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /**
   * Queues a request at model time `nowMs` (first running any steps that ended before it);
   * throws EngineRequestError if it can never run.
   */
  submit(req: EngineRequest, nowMs: number): void {
    if (this.step !== undefined && this.step.endMs <= nowMs) this.advanceTo(nowMs);
    if (this.known.has(req.id)) throw new EngineRequestError('DUPLICATE_ID', `request ${req.id} is already queued or running`);
    if (!(req.promptTokens >= 1) || !(req.outputTokens >= 1) || req.blockKeys.length * this.cache.blockSize > req.promptTokens) {
      throw new EngineRequestError('INVALID_REQUEST', `request ${req.id} needs promptTokens ≥ 1, outputTokens ≥ 1 and at most promptTokens/blockSize block keys`);
    }
    if (this.cache.blocksFor(req.promptTokens, req.outputTokens) > this.cache.capacityBlocks) {
      throw new EngineRequestError('CONTEXT_TOO_LONG', `request ${req.id} needs ${req.promptTokens + req.outputTokens} tokens; the KV cache holds ${this.cache.capacityTokens}`);
    }
    const a: Active = { req, submittedAtMs: nowMs, produced: 0, cancelled: false };
    this.known.set(req.id, a);
    this.waiting.push(a);
    this.counters.requests++;
    if (this.step === undefined) this.startStep(nowMs);
    if (this.waiting.length > this.counters.peakWaiting) this.counters.peakWaiting = this.waiting.length;
  }

  /** Drops a queued or running request (client went away); frees its KV blocks. */
  cancel(id: string): boolean {
    const a = this.known.get(id);
    if (a === undefined) return false;
    a.cancelled = true;
    this.known.delete(id);
    this.counters.cancelled++;
    const w = this.waiting.indexOf(a);
    if (w >= 0) this.waiting.splice(w, 1);
    if (this.running.delete(id) && a.lease) this.cache.release(a.lease);
    // A request in its prefill step is released when the step ends.
    return true;
  }

  /** When the current step ends, or undefined when idle. */
  nextEventAt(): number | undefined {
    return this.step?.endMs;
  }

  /** Runs every step that ends at or before `nowMs`, invoking the listener. */
  advanceTo(nowMs: number): void {
    while (this.step !== undefined && this.step.endMs <= nowMs) {
      const step = this.step;
      this.step = undefined;
      if (step.kind === 'prefill') this.finishPrefill(step.active, step.endMs);
      else this.finishDecode(step.endMs);
      this.startStep(step.endMs);
    }
  }

  stats(): EngineStats {
    const c = this.counters;
    return {
      requests: c.requests,
      completed: c.completed,
      cancelled: c.cancelled,
      running: this.running.size,
      waiting: this.waiting.length,
      peakWaiting: c.peakWaiting,
      promptTokens: c.promptTokens,
      cachedTokens: c.cachedTokens,
      prefillTokens: c.prefillTokens,
      outputTokens: c.outputTokens,
      cacheHitRate: c.promptTokens === 0 ? 0 : c.cachedTokens / c.promptTokens,
      busyMs: c.busyMs,
      prefillBusyMs: c.prefillBusyMs,
      cache: this.cache.stats(),
    };
  }

  private startStep(atMs: number): void {
    const p = this.params;
    const head = this.waiting[0];
    if (head !== undefined && this.running.size < p.maxConcurrency) {
      const fullBlocks = head.req.blockKeys.length;
      const extra = this.cache.blocksFor(head.req.promptTokens, head.req.outputTokens) - fullBlocks;
      const lease = this.cache.acquire(head.req.blockKeys, extra);
      if (lease !== undefined) {
        this.waiting.shift();
        head.lease = lease;
        const cachedTokens = Math.min(lease.hitBlocks * this.cache.blockSize, head.req.promptTokens - 1);
        const prefillTokens = head.req.promptTokens - cachedTokens;
        const c = this.counters;
        c.promptTokens += head.req.promptTokens;
        c.cachedTokens += cachedTokens;
        c.prefillTokens += prefillTokens;
        const duration = p.prefillOverheadMs + prefillTokens * p.prefillMsPerToken;
        c.busyMs += duration;
        c.prefillBusyMs += duration;
        this.prefillInfo.set(head, { cachedTokens, prefillTokens, queuedMs: atMs - head.submittedAtMs });
        this.step = { kind: 'prefill', endMs: atMs + duration, active: head };
        return;
      }
    }
    if (this.running.size > 0) {
      const duration = p.decodeMsPerStep + p.decodeMsPerSeq * this.running.size;
      this.counters.busyMs += duration;
      this.step = { kind: 'decode', endMs: atMs + duration };
    }
  }

  private finishPrefill(a: Active, atMs: number): void {
    if (a.cancelled) {
      if (a.lease) this.cache.release(a.lease);
      return;
    }
    a.produced = 1;
    this.counters.outputTokens++;
    this.listener.onPrefilled?.(a.req.id, atMs, this.prefillInfo.get(a)!);
    this.listener.onToken?.(a.req.id, 0, atMs);
    if (a.produced >= a.req.outputTokens) this.finish(a, atMs);
    else this.running.set(a.req.id, a);
  }

  private finishDecode(atMs: number): void {
    for (const a of [...this.running.values()]) {
      a.produced++;
      this.counters.outputTokens++;
      this.listener.onToken?.(a.req.id, a.produced - 1, atMs);
      if (a.produced >= a.req.outputTokens) {
        this.running.delete(a.req.id);
        this.finish(a, atMs);
      }
    }
  }

  private finish(a: Active, atMs: number): void {
    if (a.lease) this.cache.release(a.lease);
    this.known.delete(a.req.id);
    this.counters.completed++;
    this.listener.onDone?.(a.req.id, atMs);
  }
}

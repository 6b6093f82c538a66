/**
 * Remembers redeemed delegation ids until they could no longer be accepted anyway (their expiry).
 * `consume` must be atomic across every redeemer sharing the cache: of two concurrent calls with the
 * same jti, exactly one returns true (a JetStream KV implementation uses create-if-absent).
 */
export interface ReplayCache {
  /** Marks `jti` used until `expiresAtMs`. True on first use, false when it was already used. */
  consume(jti: string, expiresAtMs: number): Promise<boolean>;
}

export interface InMemoryReplayCacheOptions {
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** How often, at most, expired entries are swept (ms). */
  sweepIntervalMs?: number;
}

/** Single-process replay cache with expiry, for tests and development. */
export class InMemoryReplayCache implements ReplayCache {
  readonly #used = new Map<string, number>();
  readonly #now: () => number;
  readonly #sweepIntervalMs: number;
  #nextSweepAt = 0;

  constructor(options: InMemoryReplayCacheOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? 1_000;
  }

  async consume(jti: string, expiresAtMs: number): Promise<boolean> {
    const now = this.#now();
    this.#sweep(now);
    const until = this.#used.get(jti);
    if (until !== undefined && until > now) return false;
    this.#used.set(jti, expiresAtMs);
    return true;
  }

  /** Entries still remembered (expired ones are dropped lazily). */
  get size(): number {
    return this.#used.size;
  }

  #sweep(now: number): void {
    if (now < this.#nextSweepAt) return;
    this.#nextSweepAt = now + this.#sweepIntervalMs;
    for (const [jti, until] of this.#used) {
      if (until <= now) this.#used.delete(jti);
    }
  }
}

/**
 * Per-tenant token buckets, per gateway instance. Every authenticated call of a tenant's keys
 * (REST or gRPC) takes one token; tokens refill at `perSecond` up to `burst`. A call with no token
 * left is refused with 429 / RESOURCE_EXHAUSTED and told when the next token is due
 * (`Retry-After`). One tenant's flood empties only its own bucket.
 *
 * Per instance, on purpose: no broker round trip per request, and nothing shared to contend on.
 * N gateway instances behind a balancer admit up to N × perSecond; size `perSecond` for that.
 * Pure apart from the clock, which is injected.
 */
export interface RateLimit {
  /** Tokens per second; 0 turns the limiter off. */
  readonly perSecond: number;
  /** Bucket capacity: the largest burst a quiet tenant may send at once. */
  readonly burst: number;
}

export type RateDecision = { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

const OK: RateDecision = Object.freeze({ ok: true });

export class TenantRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private static readonly MAX_TENANTS = 100_000;

  constructor(private readonly limit: RateLimit, private readonly now: () => number = () => performance.now()) {}

  get enabled(): boolean {
    return this.limit.perSecond > 0;
  }

  /** Takes one token of the tenant's bucket, or says how long until one is available. */
  take(tenant: string): RateDecision {
    if (!this.enabled) return OK;
    const now = this.now();
    const { perSecond, burst } = this.limit;
    let b = this.buckets.get(tenant);
    if (!b) {
      if (this.buckets.size >= TenantRateLimiter.MAX_TENANTS) this.evictFull(now);
      b = { tokens: burst, at: now };
      this.buckets.set(tenant, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return OK;
    }
    return { ok: false, retryAfterSeconds: (1 - b.tokens) / perSecond };
  }

  /** Forgets buckets that have refilled completely (they behave exactly like new ones). */
  private evictFull(now: number): void {
    for (const [t, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.limit.perSecond >= this.limit.burst) this.buckets.delete(t);
    }
    if (this.buckets.size >= TenantRateLimiter.MAX_TENANTS) this.buckets.clear();
  }
}

import { describe, expect, it } from '@jest/globals';
import { TenantRateLimiter } from './rate-limiter.js';

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

describe('per-tenant token buckets', () => {
  it('lets a quiet tenant burst, then admits it at the refill rate with an exact Retry-After', () => {
    const c = clock();
    const rl = new TenantRateLimiter({ perSecond: 10, burst: 5 }, c.now);
    for (let i = 0; i < 5; i++) expect(rl.take('a')).toEqual({ ok: true });
    const refused = rl.take('a');
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.retryAfterSeconds).toBeCloseTo(0.1, 6);
    c.advance(100);
    expect(rl.take('a').ok).toBe(true);
    expect(rl.take('a').ok).toBe(false);
    c.advance(10_000);
    for (let i = 0; i < 5; i++) expect(rl.take('a').ok).toBe(true); // never more than the burst
    expect(rl.take('a').ok).toBe(false);
  });

  it('keeps tenants apart: one tenant emptying its bucket leaves the others full', () => {
    const c = clock();
    const rl = new TenantRateLimiter({ perSecond: 1, burst: 3 }, c.now);
    let refused = 0;
    for (let i = 0; i < 1000; i++) if (!rl.take('noisy').ok) refused++;
    expect(refused).toBe(997);
    for (let i = 0; i < 3; i++) expect(rl.take('quiet').ok).toBe(true);
  });

  it('admits a steady rate at the limit and refuses what is above it', () => {
    const c = clock();
    const rl = new TenantRateLimiter({ perSecond: 50, burst: 50 }, c.now);
    let admitted = 0;
    // 200 requests per second for 10 seconds
    for (let i = 0; i < 2000; i++) {
      if (rl.take('t').ok) admitted++;
      c.advance(5);
    }
    expect(admitted).toBeGreaterThanOrEqual(500);
    expect(admitted).toBeLessThanOrEqual(551);
  });

  it('is off with a rate of 0', () => {
    const rl = new TenantRateLimiter({ perSecond: 0, burst: 1 });
    expect(rl.enabled).toBe(false);
    for (let i = 0; i < 100; i++) expect(rl.take('t').ok).toBe(true);
  });
});

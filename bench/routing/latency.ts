import { SessionRouter } from '#libs/routing';
import { Rng } from './rng.js';
import { percentile } from './stats.js';

export interface LatencyResult {
  readonly replicas: number;
  readonly decisions: number;
  readonly activeSessions: number;
  readonly newSessionShare: number;
  readonly ns: { readonly p50: number; readonly p99: number; readonly p999: number; readonly max: number; readonly mean: number };
  readonly byOutcome: Readonly<Record<string, { readonly count: number; readonly p50: number; readonly p99: number }>>;
}

/**
 * Times SessionRouter.route one call at a time with process.hrtime.bigint(): a steady churn of
 * `activeSessions` live sessions, each decision a turn of a random live session or (with
 * probability newSessionShare) a new session replacing a finished one. Includes the timer's own
 * overhead (tens of nanoseconds).
 */
export function measureRouteLatency(opts: { replicas: number; decisions: number; warmup: number; activeSessions: number; newSessionShare: number; seed: number }): LatencyResult {
  const rng = new Rng(opts.seed);
  const router = new SessionRouter({
    replicas: Array.from({ length: opts.replicas }, (_, i) => `replica-${i}`),
    ttlMs: 30_000,
    loadFactor: 1.25,
    defaultCapacity: Math.ceil((opts.activeSessions * 1.5) / opts.replicas),
  });
  const live: string[] = [];
  let next = 0;
  let now = 0;
  for (; next < opts.activeSessions; next++) {
    live.push(`tenant-${next % 13}/session-${next}`);
    router.route(live[next], now);
  }
  const samples = new Float64Array(opts.decisions);
  const outcomes: string[] = new Array<string>(opts.decisions);
  for (let i = -opts.warmup; i < opts.decisions; i++) {
    now += 1;
    const slot = rng.int(0, live.length - 1);
    if (rng.next() < opts.newSessionShare) {
      router.release(live[slot]);
      live[slot] = `tenant-${next % 13}/session-${next}`;
      next++;
    }
    const id = live[slot];
    const t0 = process.hrtime.bigint();
    const d = router.route(id, now);
    const t1 = process.hrtime.bigint();
    if (i >= 0) {
      samples[i] = Number(t1 - t0);
      outcomes[i] = d.ok ? d.outcome : d.reason;
    }
  }
  const all = Array.from(samples);
  const byOutcome: Record<string, { count: number; p50: number; p99: number }> = {};
  for (const o of new Set(outcomes)) {
    const xs = all.filter((_, i) => outcomes[i] === o);
    byOutcome[o] = { count: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99) };
  }
  return {
    replicas: opts.replicas,
    decisions: opts.decisions,
    activeSessions: opts.activeSessions,
    newSessionShare: opts.newSessionShare,
    ns: {
      p50: percentile(all, 50),
      p99: percentile(all, 99),
      p999: percentile(all, 99.9),
      max: all.reduce((a, b) => (b > a ? b : a), 0),
      mean: all.reduce((a, b) => a + b, 0) / all.length,
    },
    byOutcome,
  };
}

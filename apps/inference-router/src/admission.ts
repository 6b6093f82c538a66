import type { RouteAccepted, RouteDecision, RouteRefused } from '#libs/routing';

/** Time and timers, injected so tests drive them by hand. */
export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** A session could not be placed within the admission wait. */
export class AdmissionRefusedError extends Error {
  override readonly name = 'AdmissionRefusedError';
  readonly code = 'admission_refused';
  constructor(
    readonly reason: RouteRefused['reason'] | 'queue_full' | 'cancelled',
    /** When a retry may succeed (ms from now). */
    readonly retryAfterMs: number,
    message: string,
  ) {
    super(message);
  }
}

export interface AdmissionOptions {
  /** Longest a refused placement waits for room (0: refuse at once). */
  readonly maxWaitMs: number;
  /** Most placements waiting at once; beyond it, refused at once. */
  readonly maxQueue: number;
  readonly clock?: Clock;
}

interface Waiter {
  readonly attempt: (now: number) => RouteDecision;
  readonly resolve: (d: RouteAccepted & { queuedMs: number }) => void;
  readonly reject: (e: Error) => void;
  readonly enqueuedAt: number;
  readonly deadline: number;
  /** When the last refusal said a retry may succeed. */
  retryAt: number;
  last: RouteRefused;
  cleanup?: () => void;
}

/**
 * Admission control for session placement. A placement that the router refuses (every healthy
 * replica full, or none up) waits, first come first served, up to `maxWaitMs`; it is tried again
 * whenever room may have appeared (`notify()`: a pin released, a replica added, back up or given
 * more capacity) and when the refusal's `retryAfterMs` passes (the coldest pin's TTL ran out, so
 * the router may now release it). Turns of sessions that keep their replica never wait: the
 * router answers them at once.
 */
export class AdmissionQueue {
  private readonly clock: Clock;
  private readonly waiters: Waiter[] = [];
  private timer: unknown;
  private timerAt = Number.POSITIVE_INFINITY;
  private draining = false;

  constructor(private readonly opts: AdmissionOptions) {
    this.clock = opts.clock ?? systemClock;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Places at once when `attempt` succeeds, else waits for room. Rejects with
   * AdmissionRefusedError when the wait runs out, the queue is full or `signal` aborts.
   */
  admit(attempt: (now: number) => RouteDecision, signal?: AbortSignal): Promise<RouteAccepted & { queuedMs: number }> {
    const now = this.clock.now();
    // FIFO: a newcomer does not overtake placements already waiting
    const first = this.waiters.length === 0 ? attempt(now) : undefined;
    if (first?.ok) return Promise.resolve({ ...first, queuedMs: 0 });
    if (this.opts.maxWaitMs <= 0 || this.waiters.length >= this.opts.maxQueue) {
      const refusal = first && !first.ok ? first : undefined;
      const reason = refusal ? refusal.reason : 'queue_full';
      return Promise.reject(new AdmissionRefusedError(reason, refusal?.retryAfterMs ?? 1000, refusal ? refusalMessage(refusal) : 'too many sessions are waiting for a replica'));
    }
    if (signal?.aborted) return Promise.reject(new AdmissionRefusedError('cancelled', 0, 'the caller went away'));
    return new Promise((resolve, reject) => {
      const last: RouteRefused = first && !first.ok ? first : { ok: false, reason: 'capacity', retryAfterMs: 0 };
      const w: Waiter = { attempt, resolve, reject, enqueuedAt: now, deadline: now + this.opts.maxWaitMs, retryAt: now + last.retryAfterMs, last };
      if (signal) {
        const onAbort = () => {
          this.remove(w);
          reject(new AdmissionRefusedError('cancelled', 0, 'the caller went away'));
          this.reschedule();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        w.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.waiters.push(w);
      if (first === undefined) this.drain();
      else this.reschedule();
    });
  }

  /** Room may have appeared: try the waiting placements again, in order. */
  notify(): void {
    if (this.waiters.length > 0) this.drain();
  }

  /** Refuses every waiting placement (shutdown). */
  close(): void {
    for (const w of this.waiters.splice(0)) {
      w.cleanup?.();
      w.reject(new AdmissionRefusedError('cancelled', 1000, 'the router is shutting down'));
    }
    this.clearTimer();
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      const now = this.clock.now();
      for (const w of [...this.waiters]) {
        const d = w.attempt(now);
        if (d.ok) {
          this.remove(w);
          w.resolve({ ...d, queuedMs: now - w.enqueuedAt });
          continue;
        }
        w.last = d;
        w.retryAt = now + d.retryAfterMs;
        if (now >= w.deadline) {
          this.remove(w);
          w.reject(new AdmissionRefusedError(d.reason, d.retryAfterMs, refusalMessage(d)));
        }
      }
    } finally {
      this.draining = false;
    }
    this.reschedule();
  }

  private remove(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
    w.cleanup?.();
  }

  private reschedule(): void {
    let next = Number.POSITIVE_INFINITY;
    for (const w of this.waiters) next = Math.min(next, w.deadline, Math.max(w.retryAt, w.enqueuedAt));
    if (next === this.timerAt) return;
    this.clearTimer();
    if (!Number.isFinite(next)) return;
    this.timerAt = next;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      this.drain();
    }, Math.max(0, next - this.clock.now()));
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }
}

function refusalMessage(d: RouteRefused): string {
  return d.reason === 'no_replicas' ? 'no replica serving this model is up' : 'every replica serving this model is full';
}

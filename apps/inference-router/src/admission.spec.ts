import { describe, expect, it } from '@jest/globals';
import { AdmissionQueue, AdmissionRefusedError, type Clock } from './admission.js';
import { ModelPools } from './pools.js';

/** A hand-driven clock: timers fire only when the test advances time. */
class FakeClock implements Clock {
  t = 1_000_000;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private seq = 0;
  now(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimer(h: unknown): void {
    this.timers.delete(h as number);
  }
  /** Moves time on, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = end;
  }
}

const TTL = 10_000;
const flush = () => new Promise((r) => setImmediate(r));

function setup(opts: { maxWaitMs?: number; maxQueue?: number; capacity?: number } = {}) {
  const clock = new FakeClock();
  const released: string[] = [];
  const pools = new ModelPools({ ttlMs: TTL, loadFactor: 1.25 }, { released: (_m, t, s) => released.push(`${t}.${s}`) });
  for (const id of ['a', 'b']) pools.upsertReplica({ id, models: ['m'], capacity: opts.capacity ?? 1, weight: 1, up: true });
  const q = new AdmissionQueue({ maxWaitMs: opts.maxWaitMs ?? 5000, maxQueue: opts.maxQueue ?? 10, clock });
  const admit = (session: string, signal?: AbortSignal) => q.admit((now) => pools.route('m', 't1', session, now), signal);
  return { clock, pools, q, admit, released };
}

describe('admission of sessions when every replica is full', () => {
  it('places sessions at once while there is room, and keeps existing sessions working when full', async () => {
    const { admit } = setup();
    const s1 = await admit('s1');
    const s2 = await admit('s2');
    expect(new Set([s1.replica, s2.replica])).toEqual(new Set(['a', 'b']));
    expect([s1.outcome, s2.outcome, s1.queuedMs]).toEqual(['new', 'new', 0]);
    // both replicas are full, but a pinned session's turn never waits
    const again = await admit('s1');
    expect(again).toMatchObject({ replica: s1.replica, outcome: 'hit', queuedMs: 0 });
  });

  it('queues a new session and admits it when a pin is released', async () => {
    const { admit, clock, q, pools } = setup();
    await admit('s1');
    await admit('s2');
    let placed: { replica: string; queuedMs: number } | undefined;
    void admit('s3').then((d) => (placed = d));
    await flush();
    expect(q.waiting).toBe(1);
    clock.advance(300);
    expect(placed).toBeUndefined();
    const freed = pools.assignment('m', 't1', 's2')!.replica;
    pools.release('t1', 's2');
    q.notify();
    await flush();
    expect(placed).toEqual(expect.objectContaining({ replica: freed, outcome: 'new', queuedMs: 300 }));
    expect(q.waiting).toBe(0);
  });

  it('admits a waiting session when the coldest pin outlives its TTL, releasing that pin first', async () => {
    const { admit, clock, released } = setup({ maxWaitMs: TTL + 5000 });
    await admit('old'); // t0
    clock.advance(2000);
    await admit('newer'); // t0 + 2s
    let placed: { replica: string } | undefined;
    const p = admit('late').then((d) => (placed = d));
    clock.advance(TTL - 1000); // t0 + 11s: old's pin expired at t0 + 10s (+1 ms)
    await p;
    expect(placed).toBeDefined();
    expect(released).toEqual(['t1.old']);
  });

  it('refuses with a retry time once the bounded wait runs out', async () => {
    const { admit, clock, q } = setup({ maxWaitMs: 500 });
    await admit('s1');
    await admit('s2');
    const p = admit('s3');
    const outcome = p.then(() => 'placed', (e: unknown) => e);
    clock.advance(499);
    await flush();
    expect(q.waiting).toBe(1);
    clock.advance(1);
    const e = (await outcome) as AdmissionRefusedError;
    expect(e).toBeInstanceOf(AdmissionRefusedError);
    expect(e.reason).toBe('capacity');
    // the coldest pin expires TTL after its last turn
    expect(e.retryAfterMs).toBe(TTL - 500);
    expect(q.waiting).toBe(0);
  });

  it('serves waiting sessions first come, first served', async () => {
    const { admit, pools, q } = setup();
    await admit('s1');
    await admit('s2');
    const order: string[] = [];
    void admit('w1').then(() => order.push('w1'));
    void admit('w2').then(() => order.push('w2'));
    await flush();
    expect(q.waiting).toBe(2);
    pools.release('t1', 's1');
    q.notify();
    await flush();
    expect(order).toEqual(['w1']);
    pools.release('t1', 's2');
    q.notify();
    await flush();
    expect(order).toEqual(['w1', 'w2']);
  });

  it('refuses at once when the queue is full or waiting is off', async () => {
    const full = setup({ maxQueue: 1 });
    await full.admit('s1');
    await full.admit('s2');
    void full.admit('w1').catch(() => undefined);
    await expect(full.admit('w2')).rejects.toMatchObject({ reason: 'queue_full' });
    const noWait = setup({ maxWaitMs: 0 });
    await noWait.admit('s1');
    await noWait.admit('s2');
    await expect(noWait.admit('s3')).rejects.toMatchObject({ reason: 'capacity' });
  });

  it('waits for a replica to come back when none is up, and lets a caller give up', async () => {
    const { admit, pools, q } = setup();
    pools.setUp('a', false);
    pools.setUp('b', false);
    let placed: { replica: string } | undefined;
    void admit('s1').then((d) => (placed = d));
    const ac = new AbortController();
    const gaveUp = admit('s2', ac.signal).catch((e: unknown) => e);
    await flush();
    expect(q.waiting).toBe(2);
    ac.abort();
    expect(await gaveUp).toMatchObject({ reason: 'cancelled' });
    pools.setUp('b', true);
    q.notify();
    await flush();
    expect(placed).toMatchObject({ replica: 'b', outcome: 'new' });
  });
});

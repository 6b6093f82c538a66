import { describe, expect, it } from '@jest/globals';
import { RoutingError } from './errors.js';
import { boundedLoadLimit } from './ring.js';
import { SessionRouter, type RouterState } from './session-router.js';
import type { RouteAccepted, RouteDecision } from './types.js';

const MIN = 60_000;
const ids = (n: number) => Array.from({ length: n }, (_, i) => `r${i}`);

function accepted(d: RouteDecision): RouteAccepted {
  if (!d.ok) throw new Error(`expected an assignment, got a refusal (${d.reason})`);
  return d;
}

function loads(router: SessionRouter): number[] {
  return router.replicas().map((r) => r.load);
}

describe('SessionRouter', () => {
  describe('balance', () => {
    it('keeps every replica within ceil(c · sessions / n) as sessions arrive', () => {
      const router = new SessionRouter({ replicas: ids(4), loadFactor: 1.25 });
      for (let i = 1; i <= 1000; i++) {
        accepted(router.route(`s${i}`, i));
        expect(Math.max(...loads(router))).toBeLessThanOrEqual(boundedLoadLimit(i, 4, 1.25));
      }
      const l = loads(router);
      expect(Math.max(...l) / (1000 / 4)).toBeLessThanOrEqual(1.25);
    });

    it('honours a tighter load factor', () => {
      const router = new SessionRouter({ replicas: ids(8), loadFactor: 1.05 });
      for (let i = 0; i < 800; i++) router.route(`s${i}`, i);
      expect(Math.max(...loads(router))).toBeLessThanOrEqual(boundedLoadLimit(800, 8, 1.05));
    });

    it('gives a replica of weight 2 about twice the sessions', () => {
      const router = new SessionRouter({ replicas: [{ id: 'big', weight: 2 }, 'a', 'b'] });
      for (let i = 0; i < 2000; i++) router.route(`s${i}`, i);
      expect(router.load('big') / router.load('a')).toBeGreaterThan(1.6);
      expect(router.load('big') / router.load('a')).toBeLessThan(2.4);
    });
  });

  describe('stickiness', () => {
    it('sends every turn of a session to the replica it was first given', () => {
      const router = new SessionRouter({ replicas: ids(4), ttlMs: 10 * MIN });
      const first = new Map<string, string>();
      for (let i = 0; i < 200; i++) first.set(`s${i}`, accepted(router.route(`s${i}`, 0)).replica);
      for (let turn = 1; turn < 10; turn++) {
        for (let i = 0; i < 200; i++) {
          const d = accepted(router.route(`s${i}`, turn * 1000));
          expect(d.replica).toBe(first.get(`s${i}`));
          expect(d.outcome).toBe('hit');
        }
      }
      expect(router.assignment('s0')?.turns).toBe(10);
    });

    it('keeps a returning session on its replica past the TTL when nothing needed the room', () => {
      const router = new SessionRouter({ replicas: ids(3), ttlMs: MIN });
      const r = accepted(router.route('s', 0)).replica;
      const again = accepted(router.route('s', 5 * MIN));
      expect(again).toEqual({ ok: true, replica: r, outcome: 'hit' });
    });

    it('renews the pin on each turn', () => {
      const router = new SessionRouter({ replicas: ['only'], ttlMs: MIN, defaultCapacity: 1 });
      router.route('s', 0);
      router.route('s', 50_000);
      router.route('s', 100_000);
      // 100 s after the first turn but only 10 s after the last one: still pinned.
      expect(router.route('other', 110_000)).toMatchObject({ ok: false, reason: 'capacity' });
    });

    it('is deterministic: two routers fed the same turns make the same choices', () => {
      const a = new SessionRouter({ replicas: ids(5), defaultCapacity: 50, ttlMs: 1000 });
      const b = new SessionRouter({ replicas: [...ids(5)].reverse(), defaultCapacity: 50, ttlMs: 1000 });
      for (let t = 0; t < 5000; t++) {
        const s = `s${(t * 7919) % 400}`;
        expect(a.route(s, t * 3)).toEqual(b.route(s, t * 3));
      }
      expect(a.exportState().assignments).toEqual(b.exportState().assignments);
    });
  });

  describe('replica changes', () => {
    it('moves no pinned session when a replica is added, and new sessions use the new one', () => {
      const router = new SessionRouter({ replicas: ids(4) });
      const before = new Map<string, string>();
      for (let i = 0; i < 400; i++) before.set(`s${i}`, accepted(router.route(`s${i}`, i)).replica);
      router.addReplica('r4');
      for (const [s, r] of before) expect(accepted(router.route(s, 1000)).replica).toBe(r);
      let onNew = 0;
      for (let i = 400; i < 800; i++) if (accepted(router.route(`s${i}`, 2000)).replica === 'r4') onNew++;
      expect(onNew).toBeGreaterThan(40);
    });

    it('moves only the sessions of a removed replica, spreading them over the others', () => {
      const router = new SessionRouter({ replicas: ids(4) });
      const before = new Map<string, string>();
      for (let i = 0; i < 400; i++) before.set(`s${i}`, accepted(router.route(`s${i}`, i)).replica);
      const orphaned = router.removeReplica('r1');
      expect(orphaned).toBe([...before.values()].filter((r) => r === 'r1').length);
      const movedTo = new Set<string>();
      for (const [s, r] of before) {
        const d = accepted(router.route(s, 1000));
        if (r === 'r1') {
          expect(d).toMatchObject({ outcome: 'moved', previous: 'r1' });
          movedTo.add(d.replica);
        } else {
          expect(d).toEqual({ ok: true, replica: r, outcome: 'hit' });
        }
      }
      expect([...movedTo].sort()).toEqual(['r0', 'r2', 'r3']);
      expect(router.load('r1')).toBe(0);
    });

    it('moves sessions off a replica marked down on their next turn, and sends new sessions back when it returns', () => {
      const router = new SessionRouter({ replicas: ids(3) });
      const sessions = Array.from({ length: 90 }, (_, i) => `s${i}`);
      const first = new Map(sessions.map((s) => [s, accepted(router.route(s, 0)).replica]));
      router.markDown('r0');
      for (const s of sessions) {
        const d = accepted(router.route(s, 1000));
        expect(d.replica).not.toBe('r0');
        expect(d.outcome).toBe(first.get(s) === 'r0' ? 'moved' : 'hit');
      }
      expect(router.load('r0')).toBe(0);
      router.markUp('r0');
      // Moved sessions stay where they went; new sessions reach r0 again.
      for (const s of sessions) expect(accepted(router.route(s, 2000)).replica).not.toBe('r0');
      let toR0 = 0;
      for (let i = 100; i < 200; i++) if (accepted(router.route(`s${i}`, 3000)).replica === 'r0') toR0++;
      expect(toR0).toBeGreaterThan(20);
    });

    it('refuses with no_replicas when every replica is down', () => {
      const router = new SessionRouter({ replicas: ['a'], noReplicaRetryMs: 250 });
      router.route('s', 0);
      router.markDown('a');
      expect(router.route('s', 1)).toEqual({ ok: false, reason: 'no_replicas', retryAfterMs: 250 });
      expect(new SessionRouter().route('x', 0)).toMatchObject({ ok: false, reason: 'no_replicas' });
    });

    it('throws for health changes of an unknown replica', () => {
      expect(() => new SessionRouter().markDown('ghost')).toThrow(RoutingError);
    });
  });

  describe('capacity and TTL', () => {
    it('refuses new sessions when every replica is full of live pins, saying when to retry', () => {
      const router = new SessionRouter({ replicas: ids(2), defaultCapacity: 2, ttlMs: MIN });
      for (let i = 0; i < 4; i++) accepted(router.route(`s${i}`, i * 1000));
      const d = router.route('late', 10_000);
      expect(d).toEqual({ ok: false, reason: 'capacity', retryAfterMs: MIN - 10_000 });
      // Existing sessions keep being served.
      expect(accepted(router.route('s0', 11_000)).outcome).toBe('hit');
    });

    it('releases the coldest pin past its TTL to admit a new session', () => {
      const router = new SessionRouter({ replicas: ['r'], defaultCapacity: 3, ttlMs: MIN });
      router.route('a', 0);
      router.route('b', 1000);
      router.route('c', 2000);
      router.route('a', 3000); // a is now the most recently used; b is the coldest.
      const d = accepted(router.route('new', 1000 + MIN + 1));
      expect(d.replica).toBe('r');
      expect(router.assignment('b')).toBeUndefined();
      expect(router.assignment('a')).toBeDefined();
      expect(router.assignment('c')).toBeDefined();
    });

    it('fills free room elsewhere before it releases anything', () => {
      const router = new SessionRouter({ replicas: [{ id: 'small', capacity: 1 }, { id: 'large', capacity: 100 }], ttlMs: 1 });
      for (let i = 0; i < 60; i++) accepted(router.route(`s${i}`, 0));
      expect(router.sessionCount).toBe(60);
      expect(router.load('small')).toBe(1);
      expect(router.load('large')).toBe(59);
    });

    it('sweeps expired pins and reports them', () => {
      const router = new SessionRouter({ replicas: ids(2), ttlMs: MIN });
      router.route('old', 0);
      router.route('fresh', MIN);
      expect(router.sweep(MIN + 1)).toEqual(['old']);
      expect(router.sessionCount).toBe(1);
    });

    it('releases a session that ended', () => {
      const router = new SessionRouter({ replicas: ['r'], defaultCapacity: 1 });
      router.route('done', 0);
      expect(router.release('done')).toBe(true);
      expect(router.release('done')).toBe(false);
      expect(accepted(router.route('next', 1)).replica).toBe('r');
    });

    it('respects per-replica capacity changed at run time', () => {
      const router = new SessionRouter({ replicas: ['r'], defaultCapacity: 1 });
      router.route('a', 0);
      expect(router.route('b', 1).ok).toBe(false);
      router.addReplica('r', { capacity: 2 });
      expect(router.route('b', 2).ok).toBe(true);
    });

    it('rejects invalid options', () => {
      expect(() => new SessionRouter({ loadFactor: 0.5 })).toThrow(RoutingError);
      expect(() => new SessionRouter({ ttlMs: 0 })).toThrow(RoutingError);
      expect(() => new SessionRouter({ defaultCapacity: 1.5 })).toThrow(RoutingError);
    });
  });

  describe('persistence', () => {
    it('round-trips its state through JSON and carries on identically', () => {
      const options = { ttlMs: 5000, defaultCapacity: 40 };
      const a = new SessionRouter({ ...options, replicas: [...ids(4), { id: 'w', weight: 2, capacity: 10 }] });
      a.markDown('r3');
      for (let t = 0; t < 600; t++) a.route(`s${(t * 31) % 150}`, t * 20);
      const json = JSON.stringify(a.exportState());
      const b = SessionRouter.fromState(JSON.parse(json), options);
      expect(b.exportState()).toEqual(a.exportState());
      for (let t = 600; t < 1500; t++) {
        const s = `s${(t * 37) % 220}`;
        expect(b.route(s, t * 20)).toEqual(a.route(s, t * 20));
      }
    });

    it('exports unlimited capacity as null and pins least recently used first', () => {
      const router = new SessionRouter({ replicas: ['r'] });
      router.route('x', 10);
      router.route('y', 5);
      const state = router.exportState();
      expect(state.replicas).toEqual([{ id: 'r', up: true, capacity: null, weight: 1 }]);
      expect(state.assignments.map((a) => a.sessionId)).toEqual(['y', 'x']);
    });

    it('keeps pins to a replica missing from imported state until their next turn moves them', () => {
      const state: RouterState = {
        version: 1,
        replicas: [{ id: 'a', up: true, capacity: null, weight: 1 }],
        assignments: [{ sessionId: 's', replica: 'gone', assignedAtMs: 0, lastSeenMs: 0, turns: 3 }],
      };
      const router = SessionRouter.fromState(state);
      expect(router.route('s', 1)).toEqual({ ok: true, replica: 'a', outcome: 'moved', previous: 'gone' });
    });

    it('rejects malformed state with INVALID_STATE', () => {
      const bad: unknown[] = [
        null,
        { version: 2, replicas: [], assignments: [] },
        { version: 1, replicas: [{ id: 'a', up: 'yes', capacity: null, weight: 1 }], assignments: [] },
        { version: 1, replicas: [], assignments: [{ sessionId: 's', replica: 'a', assignedAtMs: 'x', lastSeenMs: 0, turns: 1 }] },
        {
          version: 1,
          replicas: [],
          assignments: [
            { sessionId: 's', replica: 'a', assignedAtMs: 0, lastSeenMs: 0, turns: 1 },
            { sessionId: 's', replica: 'b', assignedAtMs: 0, lastSeenMs: 0, turns: 1 },
          ],
        },
      ];
      for (const state of bad) {
        expect(() => SessionRouter.fromState(state)).toThrow(expect.objectContaining({ name: 'RoutingError', code: 'INVALID_STATE' }));
      }
    });
  });
});

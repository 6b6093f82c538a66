import { describe, expect, it } from '@jest/globals';
import { RoutingError } from './errors.js';
import { boundedLoadLimit, ConsistentHashRing } from './ring.js';

const keys = (n: number, prefix = 'session') => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

function ringOf(ids: string[], vnodes = 160): ConsistentHashRing {
  const ring = new ConsistentHashRing({ vnodes });
  for (const id of ids) ring.add(id);
  return ring;
}

describe('ConsistentHashRing', () => {
  it('places keys the same way whatever order members were added in', () => {
    const a = ringOf(['r0', 'r1', 'r2', 'r3']);
    const b = ringOf(['r3', 'r1', 'r0', 'r2']);
    for (const k of keys(2000)) expect(a.locate(k)).toBe(b.locate(k));
  });

  it('spreads keys within 15% of the mean with 160 virtual nodes', () => {
    const ring = ringOf(['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']);
    const counts = new Map<string, number>();
    for (const k of keys(80_000)) counts.set(ring.locate(k)!, (counts.get(ring.locate(k)!) ?? 0) + 1);
    for (const c of counts.values()) expect(Math.abs(c / 10_000 - 1)).toBeLessThan(0.15);
  });

  it('moves only the keys that land on a new member, about 1/n of them', () => {
    const before = ringOf(['r0', 'r1', 'r2', 'r3']);
    const after = ringOf(['r0', 'r1', 'r2', 'r3', 'r4']);
    let moved = 0;
    for (const k of keys(20_000)) {
      const x = before.locate(k);
      const y = after.locate(k);
      if (x !== y) {
        moved++;
        expect(y).toBe('r4');
      }
    }
    expect(moved / 20_000).toBeGreaterThan(0.15);
    expect(moved / 20_000).toBeLessThan(0.25);
  });

  it('moves only the removed member\'s keys when a member leaves', () => {
    const ring = ringOf(['r0', 'r1', 'r2', 'r3']);
    const before = new Map(keys(20_000).map((k) => [k, ring.locate(k)]));
    ring.remove('r2');
    for (const [k, owner] of before) {
      if (owner !== 'r2') expect(ring.locate(k)).toBe(owner);
      else expect(ring.locate(k)).not.toBe('r2');
    }
  });

  it('gives a heavier member proportionally more keys', () => {
    const ring = new ConsistentHashRing();
    ring.add('small', 1);
    ring.add('big', 3);
    let big = 0;
    for (const k of keys(40_000)) if (ring.locate(k) === 'big') big++;
    expect(big / 40_000).toBeGreaterThan(0.68);
    expect(big / 40_000).toBeLessThan(0.82);
  });

  it('lists distinct members clockwise as a preference list', () => {
    const ring = ringOf(['a', 'b', 'c', 'd']);
    const list = ring.preferenceList('session-42');
    expect(new Set(list).size).toBe(4);
    expect(list[0]).toBe(ring.locate('session-42'));
    expect(ring.preferenceList('session-42', 2)).toEqual(list.slice(0, 2));
  });

  it('returns nothing from an empty ring', () => {
    const ring = new ConsistentHashRing();
    expect(ring.locate('x')).toBeUndefined();
    expect(ring.locateBounded('x', { loadOf: () => 0 })).toBeUndefined();
  });

  it('rejects bad options and members', () => {
    expect(() => new ConsistentHashRing({ vnodes: 0 })).toThrow(RoutingError);
    expect(() => new ConsistentHashRing().add('')).toThrow(RoutingError);
    expect(() => new ConsistentHashRing().add('a', -1)).toThrow(RoutingError);
  });
});

describe('bounded loads', () => {
  it('computes the Mirrokni cap ceil(c · m / n)', () => {
    expect(boundedLoadLimit(100, 4, 1.25)).toBe(32);
    expect(boundedLoadLimit(1, 4, 1.25)).toBe(1);
    expect(boundedLoadLimit(0, 4)).toBe(0);
    expect(boundedLoadLimit(10, 0)).toBe(0);
  });

  it('keeps every member at or below ceil(c · m / n) while placing keys one by one', () => {
    for (const c of [1.1, 1.25, 1.5]) {
      const ring = ringOf(['r0', 'r1', 'r2', 'r3', 'r4'], 40);
      const load = new Map<string, number>();
      let m = 0;
      for (const k of keys(5000)) {
        const id = ring.locateBounded(k, { loadFactor: c, loadOf: (r) => load.get(r) ?? 0 })!;
        load.set(id, (load.get(id) ?? 0) + 1);
        m++;
        expect(load.get(id)).toBeLessThanOrEqual(boundedLoadLimit(m, 5, c));
      }
      expect(Math.max(...load.values()) / (m / 5)).toBeLessThanOrEqual(c + 1e-9);
    }
  });

  it('uses the plain ring owner while it is under its bound', () => {
    const ring = ringOf(['r0', 'r1', 'r2']);
    for (const k of keys(200)) expect(ring.locateBounded(k, { loadOf: () => 0 })).toBe(ring.locate(k));
  });

  it('walks clockwise past full and ineligible members to the next in the preference list', () => {
    const ring = ringOf(['r0', 'r1', 'r2', 'r3']);
    const pref = ring.preferenceList('session-7');
    const full = pref[0];
    const down = pref[1];
    const id = ring.locateBounded('session-7', {
      loadOf: (r) => (r === full ? 10 : 0),
      capacityOf: () => 10,
      eligible: (r) => r !== down,
    });
    expect(id).toBe(pref[2]);
  });

  it('rejects a load factor below one', () => {
    expect(() => ringOf(['a']).locateBounded('k', { loadFactor: 0.9, loadOf: () => 0 })).toThrow(RoutingError);
  });
});

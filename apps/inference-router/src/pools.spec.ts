import { describe, expect, it } from '@jest/globals';
import { ModelPools } from './pools.js';

const replicas = ['r0', 'r1', 'r2', 'r3'];
const pools = (policy?: 'round-robin' | 'least-loaded' | 'consistent-hash' | 'bounded-sticky') => {
  const p = new ModelPools({ ttlMs: 60_000, loadFactor: 1.25, ...(policy ? { policy } : {}) });
  for (const id of replicas) p.upsertReplica({ id, models: ['m'], capacity: 8, weight: 1, up: true });
  return p;
};
const placed = (p: ModelPools, session: string, now = 0) => {
  const d = p.route('m', 't', session, now);
  if (!d.ok) throw new Error(`refused: ${d.reason}`);
  return d;
};

describe('ModelPools placement policies', () => {
  it('keeps a session on its replica by default (bounded-sticky): later turns are hits', () => {
    const p = pools();
    const first = placed(p, 's1');
    expect(first.outcome).toBe('new');
    for (let i = 1; i < 5; i++) expect(placed(p, 's1', i)).toEqual({ ok: true, replica: first.replica, outcome: 'hit' });
    expect(p.load(first.replica)).toBe(1);
  });

  it('spreads the turns of one session over every replica under round-robin, pinning nothing', () => {
    const p = pools('round-robin');
    const seen = Array.from({ length: 8 }, (_, i) => placed(p, 's1', i));
    expect(seen.map((d) => d.replica)).toEqual([...replicas, ...replicas]);
    expect(seen.every((d) => d.outcome === 'new')).toBe(true);
    expect(replicas.map((r) => p.load(r))).toEqual([0, 0, 0, 0]);
  });

  it('sends a turn to the replica with the fewest calls in flight under least-loaded, counting finished calls', () => {
    const p = pools('least-loaded');
    const a = placed(p, 'a');
    const b = placed(p, 'b');
    const c = placed(p, 'c');
    const d = placed(p, 'd');
    expect(new Set([a, b, c, d].map((x) => x.replica)).size).toBe(4);
    p.done('m', 't', 'c', c.replica, 1);
    expect(placed(p, 'e', 2).replica).toBe(c.replica);
  });

  it('maps a session to one replica under plain consistent hashing, moving it only when that replica is down', () => {
    const p = pools('consistent-hash');
    const r = placed(p, 's9').replica;
    for (let i = 0; i < 4; i++) expect(placed(p, 's9', i).replica).toBe(r);
    p.setUp(r, false);
    expect(placed(p, 's9', 5).replica).not.toBe(r);
    p.setUp(r, true);
    expect(placed(p, 's9', 6).replica).toBe(r);
  });
});

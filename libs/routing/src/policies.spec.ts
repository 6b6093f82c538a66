import { describe, expect, it } from '@jest/globals';
import { RoutingError } from './errors.js';
import { createPolicy, POLICY_NAMES, type RoutingPolicy } from './policies.js';
import type { RouteDecision } from './types.js';

const replicas = ['r0', 'r1', 'r2', 'r3'];

function replicaOf(d: RouteDecision): string {
  if (!d.ok) throw new Error(`refused: ${d.reason}`);
  return d.replica;
}

function turns(policy: RoutingPolicy, sessions: number, perSession: number): Map<string, Set<string>> {
  const seen = new Map<string, Set<string>>();
  let t = 0;
  for (let turn = 0; turn < perSession; turn++) {
    for (let s = 0; s < sessions; s++) {
      const id = `s${s}`;
      const r = replicaOf(policy.route(id, t++));
      policy.complete(id, r, t);
      if (!seen.has(id)) seen.set(id, new Set());
      seen.get(id)!.add(r);
    }
  }
  return seen;
}

describe('routing policies', () => {
  it('all implement the same interface and route to a healthy replica', () => {
    for (const name of POLICY_NAMES) {
      const policy = createPolicy(name, { replicas });
      expect(policy.name).toBe(name);
      policy.setReplicaUp('r2', false);
      for (let i = 0; i < 100; i++) expect(replicaOf(policy.route(`s${i}`, i))).not.toBe('r2');
      expect(policy.replicas().map((r) => r.id)).toEqual(replicas);
    }
  });

  it('all refuse with no_replicas when nothing is up', () => {
    for (const name of POLICY_NAMES) {
      const policy = createPolicy(name, { replicas: ['a'] });
      policy.setReplicaUp('a', false);
      expect(policy.route('s', 0)).toMatchObject({ ok: false, reason: 'no_replicas' });
    }
  });

  it('round-robin cycles through replicas regardless of session', () => {
    const policy = createPolicy('round-robin', { replicas });
    const got = Array.from({ length: 8 }, () => replicaOf(policy.route('same', 0)));
    expect(got).toEqual([...replicas, ...replicas]);
  });

  it('least-loaded picks the replica with the fewest requests in flight', () => {
    const policy = createPolicy('least-loaded', { replicas: ['a', 'b', 'c'] });
    const first = [replicaOf(policy.route('1', 0)), replicaOf(policy.route('2', 0)), replicaOf(policy.route('3', 0))];
    expect(new Set(first).size).toBe(3);
    policy.complete('2', first[1], 1);
    expect(replicaOf(policy.route('4', 2))).toBe(first[1]);
    expect(policy.replicas().map((r) => r.load)).toEqual([1, 1, 1]);
  });

  it('consistent-hash and bounded-sticky keep each session on one replica; round-robin scatters it', () => {
    expect([...turns(createPolicy('consistent-hash', { replicas }), 100, 10).values()].every((s) => s.size === 1)).toBe(true);
    expect([...turns(createPolicy('bounded-sticky', { replicas }), 100, 10).values()].every((s) => s.size === 1)).toBe(true);
    // 101 sessions per round so a session's turns do not line up with the 4-replica cycle.
    expect([...turns(createPolicy('round-robin', { replicas }), 101, 10).values()].every((s) => s.size === 4)).toBe(true);
  });

  it('plain consistent hashing re-homes some live sessions when a replica joins; bounded-sticky keeps them pinned', () => {
    const ch = createPolicy('consistent-hash', { replicas });
    const sticky = createPolicy('bounded-sticky', { replicas });
    const before = (p: RoutingPolicy) => new Map(Array.from({ length: 300 }, (_, i) => [`s${i}`, replicaOf(p.route(`s${i}`, 0))]));
    const chBefore = before(ch);
    const stickyBefore = before(sticky);
    ch.addReplica('r4');
    sticky.addReplica('r4');
    const movedCh = [...chBefore].filter(([s, r]) => replicaOf(ch.route(s, 1)) !== r).length;
    const movedSticky = [...stickyBefore].filter(([s, r]) => replicaOf(sticky.route(s, 1)) !== r).length;
    expect(movedCh).toBeGreaterThan(30);
    expect(movedSticky).toBe(0);
  });

  it('bounded-sticky releases a session when it ends', () => {
    const policy = createPolicy('bounded-sticky', { replicas: ['a'], defaultCapacity: 1 });
    replicaOf(policy.route('s1', 0));
    expect(policy.route('s2', 1).ok).toBe(false);
    policy.endSession('s1', 2);
    expect(policy.route('s2', 3).ok).toBe(true);
  });

  it('rejects an unknown policy name', () => {
    expect(() => createPolicy('random' as never)).toThrow(RoutingError);
  });
});

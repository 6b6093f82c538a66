import { describe, expect, it } from '@jest/globals';
import { activeCount, commit, EMPTY_SET, finish, PENDING_TTL_MS, release, removeAll, reserve, TOMBSTONE_TTL_MS } from './active-set.js';

describe('the active-run set behind the concurrent-run cap', () => {
  it('reserves up to the cap, commits reservations to runs and frees a slot when a run ends', () => {
    let s = EMPTY_SET;
    const a = reserve(s, 'p:1', 2, 0); s = a.set;
    const b = reserve(s, 'p:2', 2, 0); s = b.set;
    expect([a.ok, b.ok]).toEqual([true, true]);
    expect(reserve(s, 'p:3', 2, 0).ok).toBe(false);
    s = commit(s, 'p:1', 'run_1', 'chat-1', 5);
    s = commit(s, 'p:2', 'run_2', undefined, 5);
    expect(s.runs).toEqual({ run_1: { at: 0, s: 'chat-1' }, run_2: { at: 0 } });
    expect(reserve(s, 'p:3', 2, 10).ok).toBe(false);
    const f = finish(s, 'run_1', 20);
    expect(f.entry).toEqual({ at: 0, s: 'chat-1' });
    s = f.set;
    expect(activeCount(s)).toBe(1);
    expect(reserve(s, 'p:3', 2, 30).ok).toBe(true);
  });

  it('has no cap at 0', () => {
    let s = EMPTY_SET;
    for (let i = 0; i < 50; i++) {
      const r = reserve(s, `p:${i}`, 0, 0);
      expect(r.ok).toBe(true);
      s = r.set;
    }
    expect(activeCount(s)).toBe(50);
  });

  it('gives a released reservation back', () => {
    const s = reserve(EMPTY_SET, 'p:1', 1, 0).set;
    expect(reserve(s, 'p:2', 1, 0).ok).toBe(false);
    expect(reserve(release(s, 'p:1'), 'p:2', 1, 0).ok).toBe(true);
    expect(release(s, 'p:unknown')).toBe(s);
  });

  it('drops reservations of a gateway that died mid-admission after PENDING_TTL_MS', () => {
    const s = reserve(EMPTY_SET, 'p:dead', 1, 0).set;
    expect(reserve(s, 'p:2', 1, PENDING_TTL_MS - 1).ok).toBe(false);
    const later = reserve(s, 'p:2', 1, PENDING_TTL_MS);
    expect(later.ok).toBe(true);
    expect(Object.keys(later.set.runs)).toEqual(['p:2']);
  });

  it('does not count a run that ended before its admission was committed', () => {
    let s = reserve(EMPTY_SET, 'p:1', 5, 0).set;
    const f = finish(s, 'run_fast', 1);
    expect(f.changed).toBe(true);
    s = f.set;
    expect(s.ended).toEqual({ run_fast: 1 });
    s = commit(s, 'p:1', 'run_fast', undefined, 2);
    expect(s).toEqual({ runs: {} });
  });

  it('writes nothing for the end of a run it never admitted while nothing is pending', () => {
    const s = commit(reserve(EMPTY_SET, 'p:1', 5, 0).set, 'p:1', 'run_1', undefined, 0);
    const f = finish(s, 'run_elsewhere', 1);
    expect(f.changed).toBe(false);
    expect(f.set).toBe(s);
  });

  it('forgets tombstones after TOMBSTONE_TTL_MS', () => {
    let s = reserve(EMPTY_SET, 'p:1', 5, 0).set;
    s = finish(s, 'run_x', 0).set;
    s = reserve(s, 'p:2', 5, TOMBSTONE_TTL_MS).set;
    expect(s.ended).toBeUndefined();
  });

  it('removes runs that reconciliation found ended', () => {
    let s = EMPTY_SET;
    for (const id of ['a', 'b', 'c']) s = commit(reserve(s, `p:${id}`, 0, 0).set, `p:${id}`, id, undefined, 0);
    expect(Object.keys(removeAll(s, ['a', 'c']).runs)).toEqual(['b']);
  });
});

import { describe, expect, it } from '@jest/globals';
import { activeCount, admit, EMPTY_SET, parseActiveSet, removeAll } from './active-set.js';

describe('the active-run set behind the concurrent-run cap', () => {
  it('admits runs up to the cap and admits again once a run has left', () => {
    let s = EMPTY_SET;
    const a = admit(s, 'run_1', 'chat-1', 2, 0); s = a.set;
    const b = admit(s, 'run_2', undefined, 2, 5); s = b.set;
    expect([a.ok, b.ok]).toEqual([true, true]);
    expect(s.runs).toEqual({ run_1: { at: 0, s: 'chat-1' }, run_2: { at: 5 } });
    const refused = admit(s, 'run_3', undefined, 2, 10);
    expect(refused.ok).toBe(false);
    expect(refused.set).toBe(s);
    s = removeAll(s, ['run_1']);
    expect(activeCount(s)).toBe(1);
    expect(admit(s, 'run_3', undefined, 2, 30).ok).toBe(true);
  });

  it('admits the same run again without a change, even at the cap (a retried admission)', () => {
    const s = admit(EMPTY_SET, 'run_1', undefined, 1, 0).set;
    const again = admit(s, 'run_1', undefined, 1, 9);
    expect(again).toEqual({ set: s, ok: true });
    expect(again.set).toBe(s);
  });

  it('has no cap at 0', () => {
    let s = EMPTY_SET;
    for (let i = 0; i < 50; i++) {
      const r = admit(s, `run_${i}`, undefined, 0, 0);
      expect(r.ok).toBe(true);
      s = r.set;
    }
    expect(activeCount(s)).toBe(50);
  });

  it('removes many runs at once and returns the same set when none of them is in it', () => {
    let s = EMPTY_SET;
    for (const id of ['a', 'b', 'c']) s = admit(s, id, undefined, 0, 0).set;
    expect(Object.keys(removeAll(s, new Set(['a', 'c', 'zz'])).runs)).toEqual(['b']);
    expect(removeAll(s, ['zz'])).toBe(s);
  });

  it('reads documents of the earlier format, dropping pending reservations and tombstones', () => {
    const old = { runs: { 'pending:1': { at: 1, pending: true }, run_a: { at: 2, s: 'chat' }, run_b: { at: 3 } }, ended: { run_x: 4 } };
    expect(parseActiveSet(old)).toEqual({ runs: { run_a: { at: 2, s: 'chat' }, run_b: { at: 3 } } });
    expect(parseActiveSet(null)).toBe(EMPTY_SET);
    expect(parseActiveSet({ runs: 'nonsense' })).toBe(EMPTY_SET);
  });
});

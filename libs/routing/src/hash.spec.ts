import { describe, expect, it } from '@jest/globals';
import { fnv1a32, xxhash32 } from './hash.js';

describe('xxhash32', () => {
  it('matches the reference xxHash32 test vectors', () => {
    expect(xxhash32('')).toBe(0x02cc5d05);
    expect(xxhash32('a')).toBe(0x550d7456);
    expect(xxhash32('abc')).toBe(0x32d153ff);
    expect(xxhash32('Nobody inspects the spammish repetition')).toBe(0xe2293b2f);
  });

  it('hashes strings as UTF-8 so text and bytes agree', () => {
    const s = 'sessión-日本-🚀-0123456789abcdef';
    expect(xxhash32(s, 7)).toBe(xxhash32(new TextEncoder().encode(s), 7));
  });

  it('changes with the seed', () => {
    expect(xxhash32('tenant/session-1', 1)).not.toBe(xxhash32('tenant/session-1', 2));
  });

  it('spreads sequential keys evenly over 16 buckets', () => {
    const buckets = new Array<number>(16).fill(0);
    for (let i = 0; i < 160_000; i++) buckets[xxhash32(`session-${i}`) >>> 28]++;
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  });
});

describe('fnv1a32', () => {
  it('matches the reference FNV-1a 32-bit test vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });
});

import { describe, expect, it } from '@jest/globals';
import { PrefixKvCache } from './kv-cache.js';

const chain = (session: number, blocks: number) => Array.from({ length: blocks }, (_, i) => session * 10_000 + i);

describe('PrefixKvCache', () => {
  it('finds a growing context\'s earlier blocks as a cached prefix', () => {
    const cache = new PrefixKvCache({ capacityTokens: 16 * 100 });
    const t1 = cache.acquire(chain(1, 10), 2)!;
    expect(t1.hitBlocks).toBe(0);
    cache.release(t1);
    const t2 = cache.acquire(chain(1, 15), 2)!;
    expect(t2.hitBlocks).toBe(10);
    cache.release(t2);
    expect(cache.peek(chain(1, 20))).toBe(15);
  });

  it('counts only the leading run of cached blocks as hits', () => {
    const cache = new PrefixKvCache({ capacityTokens: 16 * 100 });
    cache.release(cache.acquire([1, 2, 3], 0)!);
    expect(cache.peek([1, 9, 3])).toBe(1);
  });

  it('evicts least recently used blocks, trimming a cold chain from its tail', () => {
    const cache = new PrefixKvCache({ capacityTokens: 16 * 10 });
    cache.release(cache.acquire(chain(1, 6), 0)!);
    cache.release(cache.acquire(chain(2, 4), 0)!);
    // Session 3 needs 3 blocks: the 3 least recently used are session 1's last three.
    cache.release(cache.acquire(chain(3, 3), 0)!);
    expect(cache.peek(chain(1, 6))).toBe(3);
    expect(cache.peek(chain(2, 4))).toBe(4);
    expect(cache.stats().evictedBlocks).toBe(3);
  });

  it('never evicts blocks pinned by running requests and refuses what does not fit', () => {
    const cache = new PrefixKvCache({ capacityTokens: 16 * 10 });
    const running = cache.acquire(chain(1, 6), 2)!;
    expect(cache.canAcquire(chain(2, 3), 0)).toBe(false);
    expect(cache.acquire(chain(2, 3), 0)).toBeUndefined();
    expect(cache.stats()).toMatchObject({ usedBlocks: 6, reservedBlocks: 2, pinnedBlocks: 6 });
    cache.release(running);
    expect(cache.acquire(chain(2, 3), 0)).toBeDefined();
  });

  it('shares blocks between requests with the same prefix', () => {
    const cache = new PrefixKvCache({ capacityTokens: 16 * 10 });
    const system = [7, 8, 9];
    const a = cache.acquire([...system, 100], 0)!;
    const b = cache.acquire([...system, 200], 0)!;
    expect(b.hitBlocks).toBe(3);
    expect(cache.stats().usedBlocks).toBe(5);
    cache.release(a);
    expect(cache.stats().pinnedBlocks).toBe(4);
    cache.release(b);
    expect(cache.stats().pinnedBlocks).toBe(0);
  });

  it('computes the blocks a request needs, rounding up', () => {
    const cache = new PrefixKvCache({ capacityTokens: 1000, blockSize: 16 });
    expect(cache.capacityBlocks).toBe(62);
    expect(cache.blocksFor(33, 0)).toBe(3);
    expect(cache.blocksFor(16, 16)).toBe(2);
  });
});

/**
 * A model of a GPU replica's paged KV cache with automatic prefix caching (the vLLM / SGLang
 * kind), pure and clock-free so both the HTTP simulator and a discrete-event simulation use it.
 *
 * The cache holds fixed-size blocks of tokens. A prompt is a chain of full blocks, each keyed by
 * a hash of its content and of every block before it, so a session whose context grows turn by
 * turn finds its earlier turns as a cached prefix. Blocks used by running requests are pinned;
 * the others are kept for reuse and evicted least recently used first when space is needed.
 * Released chains are queued tail first, so eviction trims a cold prefix from its end and keeps
 * its (more shareable) beginning longest.
 *
 * Not modelled: preemption (a request reserves room for its output up front, so running
 * requests never need to be swapped out) and caching of generated tokens.
 */

export interface KvCacheOptions {
  /** Total KV capacity in tokens (rounded down to whole blocks). */
  readonly capacityTokens: number;
  /** Tokens per block. Default 16 (vLLM's default). */
  readonly blockSize?: number;
}

/** What a running request holds: its pinned prompt blocks and reserved blocks for the rest. */
export interface KvLease {
  readonly keys: readonly number[];
  /** Leading blocks that were already cached (their tokens need no prefill). */
  readonly hitBlocks: number;
  /** Anonymous blocks reserved for the partial last prompt block and the output. */
  readonly reservedBlocks: number;
}

export interface KvCacheStats {
  readonly capacityTokens: number;
  readonly blockSize: number;
  readonly usedBlocks: number;
  readonly pinnedBlocks: number;
  readonly evictableBlocks: number;
  readonly reservedBlocks: number;
  readonly hitBlocks: number;
  readonly missBlocks: number;
  readonly evictedBlocks: number;
}

interface Block {
  readonly key: number;
  /** Running requests using the block; 0 = cached, unpinned, on the LRU list. */
  refs: number;
  prev: Block | undefined;
  next: Block | undefined;
}

export class PrefixKvCache {
  readonly blockSize: number;
  readonly capacityBlocks: number;
  private readonly blocks = new Map<number, Block>();
  /** Unpinned blocks as a doubly linked list, least recently used at the head. */
  private lruHead: Block | undefined;
  private lruTail: Block | undefined;
  private lruSize = 0;
  private reserved = 0;
  private hits = 0;
  private misses = 0;
  private evicted = 0;

  constructor(options: KvCacheOptions) {
    this.blockSize = options.blockSize ?? 16;
    if (!Number.isInteger(this.blockSize) || this.blockSize < 1) throw new RangeError(`blockSize must be a positive integer`);
    this.capacityBlocks = Math.floor(options.capacityTokens / this.blockSize);
    if (!(this.capacityBlocks >= 1)) throw new RangeError(`capacityTokens must hold at least one block`);
  }

  get capacityTokens(): number {
    return this.capacityBlocks * this.blockSize;
  }

  /** Blocks a request of this size needs in total (prompt plus output, rounded up). */
  blocksFor(promptTokens: number, outputTokens: number): number {
    return Math.ceil((promptTokens + outputTokens) / this.blockSize);
  }

  /** Leading blocks of the chain that are cached now; changes nothing. */
  peek(keys: readonly number[]): number {
    let n = 0;
    while (n < keys.length && this.blocks.has(keys[n])) n++;
    return n;
  }

  /** Whether `acquire(keys, extraBlocks)` would succeed now. */
  canAcquire(keys: readonly number[], extraBlocks: number): boolean {
    let missing = 0;
    let unpinnedHits = 0;
    for (const k of keys) {
      const b = this.blocks.get(k);
      if (b === undefined) missing++;
      else if (b.refs === 0) unpinnedHits++;
    }
    const free = this.capacityBlocks - this.blocks.size - this.reserved;
    return missing + extraBlocks <= free + (this.lruSize - unpinnedHits);
  }

  /**
   * Pins the chain's cached blocks, inserts the missing ones (evicting cold blocks) and reserves
   * `extraBlocks`. Returns undefined, changing nothing, when it does not fit.
   */
  acquire(keys: readonly number[], extraBlocks: number): KvLease | undefined {
    if (!this.canAcquire(keys, extraBlocks)) return undefined;
    const hitBlocks = this.peek(keys);
    for (const k of keys) {
      const b = this.blocks.get(k);
      if (b === undefined) continue;
      if (b.refs === 0) this.unlink(b);
      b.refs++;
    }
    for (const k of keys) {
      if (this.blocks.has(k)) continue;
      this.makeRoom(1);
      this.blocks.set(k, { key: k, refs: 1, prev: undefined, next: undefined });
    }
    this.makeRoom(extraBlocks);
    this.reserved += extraBlocks;
    this.hits += hitBlocks;
    this.misses += keys.length - hitBlocks;
    return { keys, hitBlocks, reservedBlocks: extraBlocks };
  }

  /** Unpins a lease: its blocks stay cached for the next turn, its reservation is freed. */
  release(lease: KvLease): void {
    this.reserved -= lease.reservedBlocks;
    for (let i = lease.keys.length - 1; i >= 0; i--) {
      const b = this.blocks.get(lease.keys[i]);
      if (b === undefined || b.refs === 0) continue;
      b.refs--;
      if (b.refs === 0) this.append(b);
    }
  }

  stats(): KvCacheStats {
    return {
      capacityTokens: this.capacityTokens,
      blockSize: this.blockSize,
      usedBlocks: this.blocks.size,
      pinnedBlocks: this.blocks.size - this.lruSize,
      evictableBlocks: this.lruSize,
      reservedBlocks: this.reserved,
      hitBlocks: this.hits,
      missBlocks: this.misses,
      evictedBlocks: this.evicted,
    };
  }

  private makeRoom(blocks: number): void {
    let free = this.capacityBlocks - this.blocks.size - this.reserved;
    while (free < blocks) {
      const victim = this.lruHead;
      if (victim === undefined) throw new Error('kv cache invariant broken: no evictable block');
      this.unlink(victim);
      this.blocks.delete(victim.key);
      this.evicted++;
      free++;
    }
  }

  /** Adds an unpinned block as the most recently used. */
  private append(b: Block): void {
    b.prev = this.lruTail;
    b.next = undefined;
    if (this.lruTail) this.lruTail.next = b;
    else this.lruHead = b;
    this.lruTail = b;
    this.lruSize++;
  }

  private unlink(b: Block): void {
    if (b.prev) b.prev.next = b.next;
    else this.lruHead = b.next;
    if (b.next) b.next.prev = b.prev;
    else this.lruTail = b.prev;
    b.prev = undefined;
    b.next = undefined;
    this.lruSize--;
  }
}

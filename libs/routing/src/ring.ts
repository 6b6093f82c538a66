import { RoutingError } from './errors.js';
import { xxhash32 } from './hash.js';

export interface HashRingOptions {
  /** Virtual nodes per unit of weight. Default 160. */
  readonly vnodes?: number;
  /** Hash seed; every router that must agree on placement uses the same seed. Default 0. */
  readonly seed?: number;
}

export interface BoundedLookup {
  /** Load factor c ≥ 1: a member may hold at most ceil(c · totalLoad · share). Default 1.25. */
  readonly loadFactor?: number;
  /** Current load of a member (e.g. pinned sessions). */
  readonly loadOf: (id: string) => number;
  /** Members that may take the key (e.g. healthy ones); default all. */
  readonly eligible?: (id: string) => boolean;
  /** Hard cap for a member regardless of the bound (e.g. max sessions); default none. */
  readonly capacityOf?: (id: string) => number;
  /**
   * Total load over eligible members, counting the key being placed. Default: the sum of
   * `loadOf` over eligible members, plus one.
   */
  readonly totalLoad?: number;
}

export const DEFAULT_VNODES = 160;
export const DEFAULT_LOAD_FACTOR = 1.25;

/**
 * The consistent-hashing-with-bounded-loads cap (Mirrokni, Thorup, Zadimoghaddam 2018):
 * ceil(c · totalLoad / n), where totalLoad counts the item being placed.
 */
export function boundedLoadLimit(totalLoad: number, members: number, loadFactor = DEFAULT_LOAD_FACTOR): number {
  if (members <= 0) return 0;
  return Math.ceil((loadFactor * totalLoad) / members);
}

interface Member {
  readonly id: string;
  weight: number;
}

/**
 * A consistent-hash ring with virtual nodes. Placement depends only on the set of member ids,
 * their weights and the seed, never on insertion order, so every router instance agrees and
 * adding a member moves only the keys that now land on it.
 */
export class ConsistentHashRing {
  readonly vnodes: number;
  readonly seed: number;
  private readonly members = new Map<string, Member>();
  private ids: string[] = [];
  private points = new Uint32Array(0);
  private owners = new Int32Array(0);
  private stamps = new Uint32Array(0);
  private stamp = 0;

  constructor(options: HashRingOptions = {}) {
    const vnodes = options.vnodes ?? DEFAULT_VNODES;
    if (!Number.isInteger(vnodes) || vnodes < 1 || vnodes > 10_000) {
      throw new RoutingError('INVALID_OPTIONS', `vnodes must be an integer in 1..10000, got ${vnodes}`);
    }
    this.vnodes = vnodes;
    this.seed = (options.seed ?? 0) >>> 0;
  }

  get size(): number {
    return this.members.size;
  }

  has(id: string): boolean {
    return this.members.has(id);
  }

  /** Member ids in sorted order. */
  memberIds(): string[] {
    return [...this.ids];
  }

  weightOf(id: string): number | undefined {
    return this.members.get(id)?.weight;
  }

  /** Adds a member, or changes its weight. Weight scales its virtual nodes (and its bound share). */
  add(id: string, weight = 1): void {
    if (typeof id !== 'string' || id.length === 0) throw new RoutingError('INVALID_REPLICA', 'member id must be a non-empty string');
    if (!(weight > 0) || !Number.isFinite(weight)) throw new RoutingError('INVALID_REPLICA', `weight of ${id} must be a positive number`);
    const existing = this.members.get(id);
    if (existing && existing.weight === weight) return;
    if (existing) existing.weight = weight;
    else this.members.set(id, { id, weight });
    this.rebuild();
  }

  remove(id: string): boolean {
    if (!this.members.delete(id)) return false;
    this.rebuild();
    return true;
  }

  /** The ring position of a key. */
  hashKey(key: string): number {
    return xxhash32(key, this.seed);
  }

  /** The first member clockwise from the key's position. */
  locate(key: string): string | undefined {
    if (this.points.length === 0) return undefined;
    return this.ids[this.owners[this.lowerBound(this.hashKey(key))]];
  }

  /**
   * Visits distinct members clockwise from `hash` until `visit` returns true; returns that member
   * (or undefined when none accepted).
   */
  walk(hash: number, visit: (id: string) => boolean): string | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    const stamp = this.nextStamp();
    let seen = 0;
    const distinct = this.ids.length;
    for (let k = 0, i = this.lowerBound(hash >>> 0); k < n && seen < distinct; k++, i = i + 1 === n ? 0 : i + 1) {
      const owner = this.owners[i];
      if (this.stamps[owner] === stamp) continue;
      this.stamps[owner] = stamp;
      seen++;
      const id = this.ids[owner];
      if (visit(id)) return id;
    }
    return undefined;
  }

  /** The first `count` distinct members clockwise from the key (a preference list). */
  preferenceList(key: string, count = this.ids.length): string[] {
    const out: string[] = [];
    this.walk(this.hashKey(key), (id) => {
      out.push(id);
      return out.length >= count;
    });
    return out;
  }

  /**
   * Consistent hashing with bounded loads: walks clockwise from the key past members that are
   * ineligible, at their bound ceil(c · total · weight / Σweight) or at their capacity.
   */
  locateBounded(key: string | number, lookup: BoundedLookup): string | undefined {
    const c = lookup.loadFactor ?? DEFAULT_LOAD_FACTOR;
    if (!(c >= 1)) throw new RoutingError('INVALID_OPTIONS', `loadFactor must be ≥ 1, got ${c}`);
    const eligible = lookup.eligible;
    let total = lookup.totalLoad;
    let weights = 0;
    let sum = 0;
    for (const m of this.members.values()) {
      if (eligible && !eligible(m.id)) continue;
      weights += m.weight;
      if (total === undefined) sum += lookup.loadOf(m.id);
    }
    if (weights === 0) return undefined;
    total ??= sum + 1;
    const scale = (c * total) / weights;
    const hash = typeof key === 'number' ? key : this.hashKey(key);
    return this.walk(hash, (id) => {
      if (eligible && !eligible(id)) return false;
      const load = lookup.loadOf(id);
      const bound = Math.ceil(scale * this.members.get(id)!.weight);
      if (load >= bound) return false;
      return lookup.capacityOf === undefined || load < lookup.capacityOf(id);
    });
  }

  private nextStamp(): number {
    this.stamp = (this.stamp + 1) >>> 0;
    if (this.stamp === 0) {
      this.stamps.fill(0);
      this.stamp = 1;
    }
    return this.stamp;
  }

  private lowerBound(hash: number): number {
    const pts = this.points;
    let lo = 0;
    let hi = pts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pts[mid] < hash) lo = mid + 1;
      else hi = mid;
    }
    return lo === pts.length ? 0 : lo;
  }

  private rebuild(): void {
    this.ids = [...this.members.keys()].sort();
    const entries: { h: number; o: number }[] = [];
    this.ids.forEach((id, o) => {
      const count = Math.max(1, Math.round(this.vnodes * this.members.get(id)!.weight));
      for (let v = 0; v < count; v++) entries.push({ h: xxhash32(`${id}#${v}`, this.seed), o });
    });
    // Ties (two ids hashing to the same point) break by id order, so placement stays deterministic.
    entries.sort((a, b) => a.h - b.h || a.o - b.o);
    this.points = Uint32Array.from(entries, (e) => e.h);
    this.owners = Int32Array.from(entries, (e) => e.o);
    this.stamps = new Uint32Array(this.ids.length);
    this.stamp = 0;
  }
}

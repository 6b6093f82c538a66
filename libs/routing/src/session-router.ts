import { RoutingError } from './errors.js';
import { ConsistentHashRing, DEFAULT_LOAD_FACTOR, DEFAULT_VNODES } from './ring.js';
import type { ReplicaOptions, ReplicaView, RouteDecision } from './types.js';

export interface SessionRouterOptions {
  /** How long a pin survives without a turn; each turn renews it. Default 10 minutes. */
  readonly ttlMs?: number;
  /** Bounded-load factor c ≥ 1. Default 1.25. */
  readonly loadFactor?: number;
  /** Virtual nodes per replica (per unit of weight). Default 160. */
  readonly vnodes?: number;
  /** Hash seed; routers that must agree use the same one. Default 0. */
  readonly seed?: number;
  /** Capacity of replicas added without one. Default unlimited. */
  readonly defaultCapacity?: number;
  /** retryAfterMs when no replica is up. Default 1000. */
  readonly noReplicaRetryMs?: number;
  /** Replicas to start with. */
  readonly replicas?: readonly (string | ({ readonly id: string } & ReplicaOptions))[];
}

/** One pin, as read back by callers. */
export interface AssignmentView {
  readonly sessionId: string;
  readonly replica: string;
  readonly assignedAtMs: number;
  readonly lastSeenMs: number;
  readonly turns: number;
}

/** Plain-JSON router state (what the service keeps in JetStream KV). */
export interface RouterState {
  readonly version: 1;
  /** `capacity: null` means unlimited. */
  readonly replicas: readonly { readonly id: string; readonly up: boolean; readonly capacity: number | null; readonly weight: number }[];
  /** Ordered from least to most recently used. */
  readonly assignments: readonly AssignmentView[];
}

export interface RouterStats {
  readonly sessions: number;
  readonly replicas: readonly ReplicaView[];
}

interface Assignment {
  readonly sessionId: string;
  replica: string;
  assignedAtMs: number;
  lastSeenMs: number;
  turns: number;
}

interface Replica {
  readonly id: string;
  up: boolean;
  capacity: number;
  weight: number;
}

type Sessions = Map<string, Assignment>;

/**
 * Sticky session → replica assignment: consistent hashing with bounded loads, pins kept for a
 * TTL after the last turn, per-replica capacity with admission control, and failover.
 *
 * - A pinned session always returns to its replica while that replica is up, even past its TTL
 *   (the prefix cache is probably still warm) and even if the replica is now above the bound.
 * - A new session walks the ring clockwise from its hash past replicas that are down, at
 *   ceil(c · (pinned + 1) · share) or at capacity. Only if every replica with room is at its
 *   bound (possible when other replicas' capacities are below their bound) does it take the
 *   first replica with room.
 * - When every healthy replica is full, the least recently used pin past its TTL on a full
 *   replica is released and placement is retried; if none is past its TTL, `route()` refuses
 *   with the time the coldest pin expires.
 * - A session pinned to a replica that is down or removed moves on its next turn ('moved').
 *
 * Pure: no clock, no I/O. `nowMs` should not go backwards (the LRU order is the touch order).
 */
export class SessionRouter {
  readonly ttlMs: number;
  readonly loadFactor: number;
  private readonly defaultCapacity: number;
  private readonly noReplicaRetryMs: number;
  private readonly ring: ConsistentHashRing;
  private readonly replicaMap = new Map<string, Replica>();
  private readonly sessions = new Map<string, Assignment>();
  /** Per replica, its sessions from least to most recently used (including replicas now removed). */
  private readonly byReplica = new Map<string, Sessions>();
  private readonly loadOf = (id: string): number => this.byReplica.get(id)?.size ?? 0;
  private readonly isUp = (id: string): boolean => this.replicaMap.get(id)?.up === true;
  private readonly capacityOf = (id: string): number => this.replicaMap.get(id)?.capacity ?? 0;
  private readonly hasRoom = (id: string): boolean => this.isUp(id) && this.loadOf(id) < this.capacityOf(id);

  constructor(options: SessionRouterOptions = {}) {
    this.ttlMs = options.ttlMs ?? 600_000;
    this.loadFactor = options.loadFactor ?? DEFAULT_LOAD_FACTOR;
    this.defaultCapacity = options.defaultCapacity ?? Number.POSITIVE_INFINITY;
    this.noReplicaRetryMs = options.noReplicaRetryMs ?? 1000;
    if (!(this.ttlMs > 0)) throw new RoutingError('INVALID_OPTIONS', `ttlMs must be positive, got ${this.ttlMs}`);
    if (!(this.loadFactor >= 1) || !Number.isFinite(this.loadFactor)) {
      throw new RoutingError('INVALID_OPTIONS', `loadFactor must be a finite number ≥ 1, got ${this.loadFactor}`);
    }
    checkCapacity('defaultCapacity', this.defaultCapacity);
    this.ring = new ConsistentHashRing({ vnodes: options.vnodes ?? DEFAULT_VNODES, seed: options.seed });
    for (const r of options.replicas ?? []) {
      if (typeof r === 'string') this.addReplica(r);
      else this.addReplica(r.id, r);
    }
  }

  /** Rebuilds a router from exported state (see `exportState`). */
  static fromState(state: unknown, options: Omit<SessionRouterOptions, 'replicas'> = {}): SessionRouter {
    const router = new SessionRouter(options);
    router.importState(state);
    return router;
  }

  /** Routes one turn of a session at time `nowMs`. */
  route(sessionId: string, nowMs: number): RouteDecision {
    const a = this.sessions.get(sessionId);
    if (a !== undefined) {
      if (this.isUp(a.replica)) {
        this.touch(a, nowMs);
        return { ok: true, replica: a.replica, outcome: 'hit' };
      }
      const previous = a.replica;
      this.drop(a);
      return this.place(sessionId, nowMs, previous);
    }
    return this.place(sessionId, nowMs, undefined);
  }

  /** Releases a session's pin (the session ended). */
  release(sessionId: string): boolean {
    const a = this.sessions.get(sessionId);
    if (a === undefined) return false;
    this.drop(a);
    return true;
  }

  /** Releases every pin whose TTL ran out by `nowMs`; returns the released session ids. */
  sweep(nowMs: number): string[] {
    const released: string[] = [];
    for (const list of [...this.byReplica.values()]) {
      for (const a of [...list.values()]) {
        if (!this.expired(a, nowMs)) break;
        released.push(a.sessionId);
        this.drop(a);
      }
    }
    return released;
  }

  /** Adds a replica, or updates the capacity / weight / health of an existing one. */
  addReplica(id: string, options: ReplicaOptions = {}): void {
    const existing = this.replicaMap.get(id);
    const capacity = options.capacity ?? existing?.capacity ?? this.defaultCapacity;
    const weight = options.weight ?? existing?.weight ?? 1;
    checkCapacity(`capacity of ${id}`, capacity);
    this.ring.add(id, weight);
    if (existing) {
      existing.capacity = capacity;
      existing.weight = weight;
      if (options.up !== undefined) existing.up = options.up;
    } else {
      this.replicaMap.set(id, { id, capacity, weight, up: options.up ?? true });
    }
  }

  /**
   * Removes a replica. Its sessions keep their pins until their next turn, which moves them
   * (outcome 'moved'); returns how many sessions were pinned to it.
   */
  removeReplica(id: string): number {
    if (!this.replicaMap.delete(id)) return 0;
    this.ring.remove(id);
    const orphans = this.loadOf(id);
    if (orphans === 0) this.byReplica.delete(id);
    return orphans;
  }

  /** Marks a replica down (its sessions move on their next turn) or up (new sessions use it again). */
  setReplicaUp(id: string, up: boolean): void {
    const r = this.replicaMap.get(id);
    if (r === undefined) throw new RoutingError('UNKNOWN_REPLICA', `unknown replica ${id}`);
    r.up = up;
  }

  markDown(id: string): void {
    this.setReplicaUp(id, false);
  }

  markUp(id: string): void {
    this.setReplicaUp(id, true);
  }

  hasReplica(id: string): boolean {
    return this.replicaMap.has(id);
  }

  /** Sessions pinned to a replica. */
  load(id: string): number {
    return this.loadOf(id);
  }

  assignment(sessionId: string): AssignmentView | undefined {
    const a = this.sessions.get(sessionId);
    return a === undefined ? undefined : view(a);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  replicas(): ReplicaView[] {
    return [...this.replicaMap.values()].map((r) => ({ id: r.id, up: r.up, capacity: r.capacity, weight: r.weight, load: this.loadOf(r.id) }));
  }

  stats(): RouterStats {
    return { sessions: this.sessions.size, replicas: this.replicas() };
  }

  /** The whole state as plain JSON: replicas and pins, least recently used first. */
  exportState(): RouterState {
    const assignments = [...this.sessions.values()]
      .sort((x, y) => x.lastSeenMs - y.lastSeenMs || (x.sessionId < y.sessionId ? -1 : x.sessionId > y.sessionId ? 1 : 0))
      .map(view);
    const replicas = [...this.replicaMap.values()].map((r) => ({
      id: r.id,
      up: r.up,
      capacity: Number.isFinite(r.capacity) ? r.capacity : null,
      weight: r.weight,
    }));
    return { version: 1, replicas, assignments };
  }

  /** Replaces the replicas and pins with exported state; throws RoutingError INVALID_STATE if malformed. */
  importState(state: unknown): void {
    const parsed = parseRouterState(state);
    for (const id of [...this.replicaMap.keys()]) this.removeReplica(id);
    this.sessions.clear();
    this.byReplica.clear();
    for (const r of parsed.replicas) {
      this.addReplica(r.id, { capacity: r.capacity ?? Number.POSITIVE_INFINITY, weight: r.weight, up: r.up });
    }
    const ordered = [...parsed.assignments].sort((x, y) => x.lastSeenMs - y.lastSeenMs);
    for (const v of ordered) {
      if (this.sessions.has(v.sessionId)) throw new RoutingError('INVALID_STATE', `session ${v.sessionId} appears twice`);
      this.attach({ ...v });
    }
  }

  private place(sessionId: string, nowMs: number, previous: string | undefined): RouteDecision {
    let total = 0;
    let upCount = 0;
    for (const r of this.replicaMap.values()) {
      if (!r.up) continue;
      upCount++;
      total += this.loadOf(r.id);
    }
    if (upCount === 0) return { ok: false, reason: 'no_replicas', retryAfterMs: this.noReplicaRetryMs };
    const hash = this.ring.hashKey(sessionId);
    for (;;) {
      // The bound spreads load; capacity is the hard limit. When replicas below their bound are
      // all at capacity, the others may take the session past the bound rather than refuse it.
      const replica =
        this.ring.locateBounded(hash, {
          loadFactor: this.loadFactor,
          loadOf: this.loadOf,
          eligible: this.isUp,
          capacityOf: this.capacityOf,
          totalLoad: total + 1,
        }) ?? this.ring.walk(hash, this.hasRoom);
      if (replica !== undefined) {
        this.attach({ sessionId, replica, assignedAtMs: nowMs, lastSeenMs: nowMs, turns: 1 });
        return previous === undefined ? { ok: true, replica, outcome: 'new' } : { ok: true, replica, outcome: 'moved', previous };
      }
      const victim = this.coldestOnFullReplica();
      if (victim === undefined || !this.expired(victim, nowMs)) {
        const retryAfterMs = victim === undefined ? this.ttlMs : Math.max(1, Math.ceil(victim.lastSeenMs + this.ttlMs - nowMs));
        return { ok: false, reason: 'capacity', retryAfterMs };
      }
      this.drop(victim);
      total--;
    }
  }

  /** The least recently used session among healthy replicas at capacity. */
  private coldestOnFullReplica(): Assignment | undefined {
    let coldest: Assignment | undefined;
    for (const r of this.replicaMap.values()) {
      if (!r.up) continue;
      const list = this.byReplica.get(r.id);
      if (list === undefined || list.size < r.capacity) continue;
      const first = list.values().next();
      if (first.done) continue;
      if (coldest === undefined || first.value.lastSeenMs < coldest.lastSeenMs) coldest = first.value;
    }
    return coldest;
  }

  private expired(a: Assignment, nowMs: number): boolean {
    return nowMs - a.lastSeenMs > this.ttlMs;
  }

  private touch(a: Assignment, nowMs: number): void {
    if (nowMs > a.lastSeenMs) a.lastSeenMs = nowMs;
    a.turns++;
    const list = this.byReplica.get(a.replica)!;
    list.delete(a.sessionId);
    list.set(a.sessionId, a);
  }

  private attach(a: Assignment): void {
    this.sessions.set(a.sessionId, a);
    let list = this.byReplica.get(a.replica);
    if (list === undefined) {
      list = new Map();
      this.byReplica.set(a.replica, list);
    }
    list.set(a.sessionId, a);
  }

  private drop(a: Assignment): void {
    this.sessions.delete(a.sessionId);
    const list = this.byReplica.get(a.replica);
    if (list === undefined) return;
    list.delete(a.sessionId);
    if (list.size === 0 && !this.replicaMap.has(a.replica)) this.byReplica.delete(a.replica);
  }
}

function view(a: Assignment): AssignmentView {
  return { sessionId: a.sessionId, replica: a.replica, assignedAtMs: a.assignedAtMs, lastSeenMs: a.lastSeenMs, turns: a.turns };
}

function checkCapacity(what: string, capacity: number): void {
  if (capacity === Number.POSITIVE_INFINITY) return;
  if (!Number.isInteger(capacity) || capacity < 0) {
    throw new RoutingError('INVALID_REPLICA', `${what} must be a non-negative integer, got ${capacity}`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** Validates unknown input (e.g. JSON read back from KV) as RouterState. */
export function parseRouterState(input: unknown): RouterState {
  const fail = (why: string): never => {
    throw new RoutingError('INVALID_STATE', `invalid router state: ${why}`);
  };
  if (!isRecord(input)) return fail('not an object');
  if (input.version !== 1) return fail(`unsupported version ${String(input.version)}`);
  if (!Array.isArray(input.replicas)) return fail('replicas is not an array');
  if (!Array.isArray(input.assignments)) return fail('assignments is not an array');
  const replicas = input.replicas.map((r: unknown, i) => {
    if (!isRecord(r)) return fail(`replicas[${i}] is not an object`);
    if (typeof r.id !== 'string' || r.id === '') return fail(`replicas[${i}].id`);
    if (typeof r.up !== 'boolean') return fail(`replicas[${i}].up`);
    if (r.capacity !== null && !(Number.isInteger(r.capacity) && (r.capacity as number) >= 0)) return fail(`replicas[${i}].capacity`);
    if (!finite(r.weight) || r.weight <= 0) return fail(`replicas[${i}].weight`);
    return { id: r.id, up: r.up, capacity: r.capacity as number | null, weight: r.weight };
  });
  const assignments = input.assignments.map((a: unknown, i) => {
    if (!isRecord(a)) return fail(`assignments[${i}] is not an object`);
    if (typeof a.sessionId !== 'string' || a.sessionId === '') return fail(`assignments[${i}].sessionId`);
    if (typeof a.replica !== 'string' || a.replica === '') return fail(`assignments[${i}].replica`);
    if (!finite(a.assignedAtMs) || !finite(a.lastSeenMs)) return fail(`assignments[${i}] times`);
    if (!Number.isInteger(a.turns) || (a.turns as number) < 0) return fail(`assignments[${i}].turns`);
    return { sessionId: a.sessionId, replica: a.replica, assignedAtMs: a.assignedAtMs, lastSeenMs: a.lastSeenMs, turns: a.turns as number };
  });
  return { version: 1, replicas, assignments };
}

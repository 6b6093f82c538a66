import { RoutingError } from './errors.js';
import { ConsistentHashRing, DEFAULT_VNODES } from './ring.js';
import { SessionRouter, type SessionRouterOptions } from './session-router.js';
import type { ReplicaOptions, ReplicaView, RouteDecision } from './types.js';

export type PolicyName = 'round-robin' | 'least-loaded' | 'consistent-hash' | 'bounded-sticky';
export const POLICY_NAMES: readonly PolicyName[] = ['round-robin', 'least-loaded', 'consistent-hash', 'bounded-sticky'];

/** One way of choosing a replica per turn; the benchmark compares them behind this interface. */
export interface RoutingPolicy {
  readonly name: PolicyName;
  /** Chooses a replica for one turn of a session. */
  route(sessionId: string, nowMs: number): RouteDecision;
  /** The request routed to `replica` finished (feeds in-flight counts). */
  complete(sessionId: string, replica: string, nowMs: number): void;
  /** The session ended; drop anything kept for it. */
  endSession(sessionId: string, nowMs: number): void;
  /** Adds a replica or updates its options. */
  addReplica(id: string, options?: ReplicaOptions): void;
  removeReplica(id: string): void;
  setReplicaUp(id: string, up: boolean): void;
  replicas(): ReplicaView[];
}

export type PolicyOptions = SessionRouterOptions;

const NO_REPLICAS_RETRY_MS = 1000;

interface PoolEntry {
  readonly id: string;
  up: boolean;
  capacity: number;
  weight: number;
}

/** Replica bookkeeping shared by the stateless policies. */
abstract class StatelessPolicy implements RoutingPolicy {
  abstract readonly name: PolicyName;
  protected readonly pool = new Map<string, PoolEntry>();
  protected up: string[] = [];
  protected readonly inflight = new Map<string, number>();

  constructor(options: PolicyOptions) {
    for (const r of options.replicas ?? []) {
      if (typeof r === 'string') this.addReplica(r);
      else this.addReplica(r.id, r);
    }
  }

  abstract route(sessionId: string, nowMs: number): RouteDecision;

  complete(_sessionId: string, replica: string): void {
    const n = this.inflight.get(replica);
    if (n !== undefined && n > 0) this.inflight.set(replica, n - 1);
  }

  endSession(): void {}

  addReplica(id: string, options: ReplicaOptions = {}): void {
    if (typeof id !== 'string' || id === '') throw new RoutingError('INVALID_REPLICA', 'replica id must be a non-empty string');
    const e = this.pool.get(id);
    const entry: PoolEntry = {
      id,
      up: options.up ?? e?.up ?? true,
      capacity: options.capacity ?? e?.capacity ?? Number.POSITIVE_INFINITY,
      weight: options.weight ?? e?.weight ?? 1,
    };
    this.pool.set(id, entry);
    if (!this.inflight.has(id)) this.inflight.set(id, 0);
    this.changed();
  }

  removeReplica(id: string): void {
    if (this.pool.delete(id)) this.changed();
  }

  setReplicaUp(id: string, up: boolean): void {
    const e = this.pool.get(id);
    if (e === undefined) throw new RoutingError('UNKNOWN_REPLICA', `unknown replica ${id}`);
    e.up = up;
    this.changed();
  }

  replicas(): ReplicaView[] {
    return [...this.pool.values()].map((e) => ({ id: e.id, up: e.up, capacity: e.capacity, weight: e.weight, load: this.inflight.get(e.id) ?? 0 }));
  }

  protected accept(replica: string): RouteDecision {
    this.inflight.set(replica, (this.inflight.get(replica) ?? 0) + 1);
    return { ok: true, replica, outcome: 'new' };
  }

  protected changed(): void {
    this.up = [...this.pool.values()].filter((e) => e.up).map((e) => e.id);
  }
}

/** Each turn goes to the next healthy replica in turn, ignoring sessions. */
export class RoundRobinPolicy extends StatelessPolicy {
  readonly name = 'round-robin' as const;
  private cursor = 0;

  route(): RouteDecision {
    if (this.up.length === 0) return { ok: false, reason: 'no_replicas', retryAfterMs: NO_REPLICAS_RETRY_MS };
    const replica = this.up[this.cursor % this.up.length];
    this.cursor = (this.cursor + 1) % this.up.length;
    return this.accept(replica);
  }
}

/** Each turn goes to the healthy replica with the fewest requests in flight (ties rotate). */
export class LeastLoadedPolicy extends StatelessPolicy {
  readonly name = 'least-loaded' as const;
  private cursor = 0;

  route(): RouteDecision {
    const n = this.up.length;
    if (n === 0) return { ok: false, reason: 'no_replicas', retryAfterMs: NO_REPLICAS_RETRY_MS };
    let best = '';
    let bestLoad = Number.POSITIVE_INFINITY;
    for (let k = 0; k < n; k++) {
      const id = this.up[(this.cursor + k) % n];
      const load = (this.inflight.get(id) ?? 0) / (this.pool.get(id)?.weight ?? 1);
      if (load < bestLoad) {
        best = id;
        bestLoad = load;
      }
    }
    this.cursor = (this.cursor + 1) % n;
    return this.accept(best);
  }
}

/** Plain consistent hashing: the first healthy replica clockwise from the session's hash, no pins, no bound. */
export class ConsistentHashPolicy extends StatelessPolicy {
  readonly name = 'consistent-hash' as const;
  private readonly ring: ConsistentHashRing;

  constructor(options: PolicyOptions) {
    super({});
    this.ring = new ConsistentHashRing({ vnodes: options.vnodes ?? DEFAULT_VNODES, seed: options.seed });
    for (const r of options.replicas ?? []) {
      if (typeof r === 'string') this.addReplica(r);
      else this.addReplica(r.id, r);
    }
  }

  route(sessionId: string): RouteDecision {
    const replica = this.ring.walk(this.ring.hashKey(sessionId), (id) => this.pool.get(id)?.up === true);
    if (replica === undefined) return { ok: false, reason: 'no_replicas', retryAfterMs: NO_REPLICAS_RETRY_MS };
    return this.accept(replica);
  }

  override addReplica(id: string, options: ReplicaOptions = {}): void {
    super.addReplica(id, options);
    this.ring.add(id, this.pool.get(id)!.weight);
  }

  override removeReplica(id: string): void {
    super.removeReplica(id);
    this.ring.remove(id);
  }
}

/** Consistent hashing with bounded loads and TTL pinning: the SessionRouter behind the policy interface. */
export class BoundedStickyPolicy implements RoutingPolicy {
  readonly name = 'bounded-sticky' as const;
  readonly router: SessionRouter;

  constructor(options: PolicyOptions = {}) {
    this.router = new SessionRouter(options);
  }

  route(sessionId: string, nowMs: number): RouteDecision {
    return this.router.route(sessionId, nowMs);
  }

  complete(): void {}

  endSession(sessionId: string): void {
    this.router.release(sessionId);
  }

  addReplica(id: string, options?: ReplicaOptions): void {
    this.router.addReplica(id, options);
  }

  removeReplica(id: string): void {
    this.router.removeReplica(id);
  }

  setReplicaUp(id: string, up: boolean): void {
    this.router.setReplicaUp(id, up);
  }

  replicas(): ReplicaView[] {
    return this.router.replicas();
  }
}

export function createPolicy(name: PolicyName, options: PolicyOptions = {}): RoutingPolicy {
  switch (name) {
    case 'round-robin':
      return new RoundRobinPolicy(options);
    case 'least-loaded':
      return new LeastLoadedPolicy(options);
    case 'consistent-hash':
      return new ConsistentHashPolicy(options);
    case 'bounded-sticky':
      return new BoundedStickyPolicy(options);
    default:
      throw new RoutingError('INVALID_OPTIONS', `unknown routing policy ${String(name)}`);
  }
}

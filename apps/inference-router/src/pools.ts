import { createPolicy, SessionRouter, xxhash32, type AssignmentView, type PolicyName, type RouteDecision, type RouterState, type RoutingPolicy } from '#libs/routing';

/** What the pools need to know of a replica. */
export interface PoolReplica {
  readonly id: string;
  readonly models: readonly string[];
  /** null: unlimited */
  readonly capacity: number | null;
  readonly weight: number;
  readonly up: boolean;
}

/** A pin as persisted (one KV entry per session and model pool). */
export interface StoredAssignment extends AssignmentView {
  readonly tenantId: string;
  readonly session: string;
  readonly model: string;
}

export interface PoolsOptions {
  readonly ttlMs: number;
  readonly loadFactor: number;
  readonly seed?: number;
  /**
   * The placement policy (default `bounded-sticky`: the SessionRouter with pins). The others
   * (`round-robin`, `least-loaded`, `consistent-hash`) keep no pins and no capacity; they are
   * baselines for the live routing benchmark, not for production.
   */
  readonly policy?: PolicyName;
}

/** Called when a pin was created, moved, renewed or dropped (for persistence and gauges). */
export interface PoolListener {
  pinned?(model: string, tenantId: string, session: string, view: AssignmentView, outcome: 'new' | 'moved' | 'hit'): void;
  released?(model: string, tenantId: string, session: string, replica: string | undefined): void;
}

/** A short, KV-safe token naming a model pool (models may contain `/`, `.`, `:`...). */
export function poolKey(model: string): string {
  const safe = model.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40);
  return `${safe}-${xxhash32(model).toString(36)}`;
}

const sessionKey = (tenantId: string, session: string): string => `${tenantId}.${session}`;

/**
 * One SessionRouter per model: the replicas serving a model form its pool (a replica listing `*`
 * joins every pool). A session has a pin in each pool it used, so a step on the cheap model and a
 * step on the frontier model each keep their own warm replica. Pure: no clock, no I/O.
 */
export class ModelPools {
  private readonly pools = new Map<string, SessionRouter>();
  private readonly replicaSpecs = new Map<string, PoolReplica>();
  /** Pinned session keys per pool (to find pins the router released by itself). */
  private readonly members = new Map<string, Set<string>>();
  /** Per model, a baseline policy that places turns instead of the SessionRouter (benchmarks). */
  private readonly baselines = new Map<string, RoutingPolicy>();

  constructor(private readonly opts: PoolsOptions, private readonly listener: PoolListener = {}) {}

  /** The replicas as last set. */
  replicas(): PoolReplica[] {
    return [...this.replicaSpecs.values()];
  }

  replica(id: string): PoolReplica | undefined {
    return this.replicaSpecs.get(id);
  }

  /** Models with a pool (explicitly served, or asked for and served by a `*` replica). */
  models(): string[] {
    return [...this.pools.keys()];
  }

  /** How many replicas (up or not) serve the model. */
  servingCount(model: string): number {
    let n = 0;
    for (const r of this.replicaSpecs.values()) if (r.models.includes(model) || r.models.includes('*')) n++;
    return n;
  }

  /** Whether some replica (up or not) serves the model. */
  serves(model: string): boolean {
    for (const r of this.replicaSpecs.values()) if (r.models.includes(model) || r.models.includes('*')) return true;
    return false;
  }

  /** Adds or updates a replica in every pool of its models; removes it from pools it left. */
  upsertReplica(r: PoolReplica): void {
    this.replicaSpecs.set(r.id, r);
    for (const m of r.models) if (m !== '*') this.pool(m);
    for (const [model, router] of this.pools) {
      if (r.models.includes(model) || r.models.includes('*')) {
        router.addReplica(r.id, { capacity: r.capacity ?? Number.POSITIVE_INFINITY, weight: r.weight, up: r.up });
        this.baselines.get(model)?.addReplica(r.id, { weight: r.weight, up: r.up });
      } else if (router.hasReplica(r.id)) {
        router.removeReplica(r.id);
        this.baselines.get(model)?.removeReplica(r.id);
      }
    }
  }

  /** Removes a replica; its sessions move on their next turn. */
  removeReplica(id: string): void {
    this.replicaSpecs.delete(id);
    for (const router of this.pools.values()) router.removeReplica(id);
    for (const b of this.baselines.values()) b.removeReplica(id);
  }

  setUp(id: string, up: boolean): void {
    const r = this.replicaSpecs.get(id);
    if (r === undefined || r.up === up) return;
    this.replicaSpecs.set(id, { ...r, up });
    for (const router of this.pools.values()) if (router.hasReplica(id)) router.setReplicaUp(id, up);
    for (const b of this.baselines.values()) if (b.replicas().some((x) => x.id === id)) b.setReplicaUp(id, up);
  }

  /**
   * Routes one turn of a tenant's session on a model: keeps its replica (hit), places it
   * (new), or moves it off a failed replica (moved); refuses when the pool is full or down.
   */
  route(model: string, tenantId: string, session: string, nowMs: number): RouteDecision {
    const router = this.pools.get(model) ?? (this.serves(model) ? this.pool(model) : undefined);
    if (router === undefined) return { ok: false, reason: 'no_replicas', retryAfterMs: 1000 };
    const key = sessionKey(tenantId, session);
    const baseline = this.baselines.get(model);
    if (baseline !== undefined) return baseline.route(key, nowMs);
    const before = router.sessionCount;
    const d = router.route(key, nowMs);
    if (d.ok) {
      const view = router.assignment(key)!;
      if (d.outcome !== 'hit') {
        // placing may have released cold pins (past their TTL) on full replicas
        if (router.sessionCount < before + (d.outcome === 'new' ? 1 : 0)) this.evicted(model, router);
        this.members.get(model)!.add(key);
      }
      this.listener.pinned?.(model, tenantId, session, view, d.outcome);
    }
    return d;
  }

  /** The call placed on `replica` ended (baseline policies count requests in flight). */
  done(model: string, tenantId: string, session: string, replica: string, nowMs: number): void {
    this.baselines.get(model)?.complete(sessionKey(tenantId, session), replica, nowMs);
  }

  /** Releases a session's pin in one pool, or in every pool. Returns how many were released. */
  release(tenantId: string, session: string, model?: string): number {
    const key = sessionKey(tenantId, session);
    let n = 0;
    for (const [m, router] of this.pools) {
      if (model !== undefined && m !== model) continue;
      const replica = router.assignment(key)?.replica;
      if (router.release(key)) {
        this.members.get(m)?.delete(key);
        n++;
        this.listener.released?.(m, tenantId, session, replica);
      }
    }
    return n;
  }

  /** Drops pins idle for longer than `idleMs` (beyond their TTL); returns how many. */
  sweep(nowMs: number, idleMs: number): number {
    let n = 0;
    for (const [m, router] of this.pools) {
      for (const key of router.sweep(nowMs - Math.max(0, idleMs - router.ttlMs))) {
        n++;
        this.members.get(m)?.delete(key);
        const dot = key.indexOf('.');
        this.listener.released?.(m, key.slice(0, dot), key.slice(dot + 1), undefined);
      }
    }
    return n;
  }

  assignment(model: string, tenantId: string, session: string): AssignmentView | undefined {
    return this.pools.get(model)?.assignment(sessionKey(tenantId, session));
  }

  /** Sessions pinned to a replica over all pools. */
  load(replicaId: string): number {
    let n = 0;
    for (const router of this.pools.values()) n += router.load(replicaId);
    return n;
  }

  sessionCount(): number {
    let n = 0;
    for (const router of this.pools.values()) n += router.sessionCount;
    return n;
  }

  /** Restores persisted pins (start-up), pool by pool; pins of unknown models are dropped. */
  restore(assignments: readonly StoredAssignment[]): number {
    const byModel = new Map<string, StoredAssignment[]>();
    for (const a of assignments) {
      if (!this.serves(a.model)) continue;
      const list = byModel.get(a.model) ?? [];
      list.push(a);
      byModel.set(a.model, list);
    }
    let n = 0;
    for (const [model, list] of byModel) {
      const router = this.pool(model);
      const current = router.exportState();
      const seen = new Set(current.assignments.map((a) => a.sessionId));
      const restored = list
        .map((a) => ({ sessionId: sessionKey(a.tenantId, a.session), replica: a.replica, assignedAtMs: a.assignedAtMs, lastSeenMs: a.lastSeenMs, turns: a.turns }))
        .filter((a) => !seen.has(a.sessionId));
      const state: RouterState = { version: 1, replicas: current.replicas, assignments: [...current.assignments, ...restored] };
      router.importState(state);
      const members = this.members.get(model)!;
      for (const a of restored) members.add(a.sessionId);
      n += restored.length;
    }
    return n;
  }

  private pool(model: string): SessionRouter {
    let router = this.pools.get(model);
    if (router !== undefined) return router;
    router = new SessionRouter({ ttlMs: this.opts.ttlMs, loadFactor: this.opts.loadFactor, seed: this.opts.seed });
    for (const r of this.replicaSpecs.values()) {
      if (r.models.includes(model) || r.models.includes('*')) router.addReplica(r.id, { capacity: r.capacity ?? Number.POSITIVE_INFINITY, weight: r.weight, up: r.up });
    }
    this.pools.set(model, router);
    this.members.set(model, new Set());
    const policy = this.opts.policy ?? 'bounded-sticky';
    if (policy !== 'bounded-sticky') {
      const baseline = createPolicy(policy, { seed: this.opts.seed });
      for (const r of this.replicaSpecs.values()) {
        if (r.models.includes(model) || r.models.includes('*')) baseline.addReplica(r.id, { weight: r.weight, up: r.up });
      }
      this.baselines.set(model, baseline);
    }
    return router;
  }

  /**
   * SessionRouter releases cold pins (past their TTL) by itself when a full pool needs room: find
   * which went, from the mirror of pinned keys, so their KV entries are removed too. Only runs when
   * the session count shows that pins were released.
   */
  private evicted(model: string, router: SessionRouter): void {
    const members = this.members.get(model);
    if (members === undefined) return;
    for (const key of members) {
      if (router.assignment(key) !== undefined) continue;
      members.delete(key);
      const dot = key.indexOf('.');
      this.listener.released?.(model, key.slice(0, dot), key.slice(dot + 1), undefined);
    }
  }
}

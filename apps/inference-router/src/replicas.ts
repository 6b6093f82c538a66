import type { KV, KvWatchEntry } from '@nats-io/kv';
import { KvWatchInclude } from '@nats-io/kv';
import { parseReplicaSpec, type ConfigSecret, type ReplicaSpec } from '#libs/config';
import { decodeJson, encodeJson } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { routerMetrics } from './metrics.js';
import type { ModelPools } from './pools.js';
import { probe, type ReplicaTarget } from './upstream/client.js';

/** Where a replica's definition came from. */
export type ReplicaSource = 'config' | 'simulator' | 'admin';

/** A replica as the admin API shows it: no key, only the name of the key it uses. */
export interface ReplicaView extends ReplicaSpec {
  readonly source: ReplicaSource;
  readonly up: boolean;
  /** Sessions pinned to it (all model pools). */
  readonly load: number;
  readonly lastError?: string;
}

interface Entry {
  spec: ReplicaSpec;
  source: ReplicaSource;
  failures: number;
  downSince: number;
  probing: boolean;
  lastError?: string;
}

/** Stored in BUCKETS.replicas: a replica defined or changed through the admin API. */
interface StoredReplica {
  readonly spec: ReplicaSpec;
  readonly updatedAt: string;
}

/** Periodic health check failures in a row that mark a replica down. */
const DOWN_AFTER = 2;
/** A replica without a health path is tried again this many intervals after it failed. */
const HALF_OPEN_INTERVALS = 5;

/**
 * The replicas: their definitions (configuration, the in-process simulators, and the admin API,
 * whose changes are kept in JetStream KV and watched, so every router instance applies them),
 * their keys, and their health (probed every interval; a replica that fails a call is marked down
 * at once). Changes go to the model pools; `onRoom` is called when a change may let waiting
 * sessions in.
 *
 * At start the configured replicas win over stored ones with the same id; stored replicas with
 * other ids are added. Admin changes therefore last until the next start for configured ids, and
 * until deleted for the rest.
 */
export class ReplicaRegistry {
  private readonly entries = new Map<string, Entry>();
  private watch?: { stop(): void };
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly pools: ModelPools,
    private readonly kv: KV | undefined,
    private readonly keys: Readonly<Record<string, ConfigSecret>>,
    private readonly logger: Logger,
    private readonly onRoom: () => void,
  ) {}

  async start(initial: ReadonlyArray<{ spec: ReplicaSpec; source: ReplicaSource }>): Promise<void> {
    for (const r of initial) this.apply(r.spec, r.source);
    if (this.kv === undefined) return;
    for await (const k of await this.kv.keys('>')) {
      if (this.entries.has(k)) continue;
      const e = await this.kv.get(k);
      const stored = e && e.operation === 'PUT' && e.length > 0 ? this.decode(e.value, k) : undefined;
      if (stored) this.apply(stored, 'admin');
    }
    const w = await this.kv.watch({ key: '>', include: KvWatchInclude.UpdatesOnly });
    this.watch = w;
    void (async () => {
      for await (const e of w) this.seen(e);
    })().catch((err: unknown) => {
      if (!this.stopped) this.logger.warn({ err }, 'replica watch ended');
    });
  }

  /** Polls every replica's health path every `intervalMs`. */
  startHealthChecks(intervalMs: number, timeoutMs: number): void {
    const tick = () => {
      for (const [id, e] of this.entries) void this.check(id, e, intervalMs, timeoutMs);
    };
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
    tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.watch?.stop();
  }

  list(): ReplicaView[] {
    return [...this.entries.keys()].sort().map((id) => this.view(id)!);
  }

  view(id: string): ReplicaView | undefined {
    const e = this.entries.get(id);
    if (e === undefined) return undefined;
    return { ...e.spec, source: e.source, up: this.pools.replica(id)?.up ?? false, load: this.pools.load(id), ...(e.lastError ? { lastError: e.lastError } : {}) };
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  /** Where to send a call (with its key). */
  target(id: string): ReplicaTarget | undefined {
    const e = this.entries.get(id);
    if (e === undefined) return undefined;
    const key = e.spec.apiKeyRef ? this.keys[e.spec.apiKeyRef]?.reveal() : undefined;
    return { id, url: e.spec.url, kind: e.spec.kind, ...(key ? { apiKey: key } : {}) };
  }

  /** Adds or replaces a replica (admin API): stored in KV, applied here at once and by the watch everywhere. */
  async put(spec: ReplicaSpec): Promise<{ created: boolean }> {
    if (spec.apiKeyRef !== undefined && this.keys[spec.apiKeyRef] === undefined) {
      throw new RangeError(`apiKeyRef "${spec.apiKeyRef}" names no provider key`);
    }
    const created = !this.entries.has(spec.id);
    if (this.kv) await this.kv.put(spec.id, encodeJson({ spec, updatedAt: new Date().toISOString() } satisfies StoredReplica));
    this.apply(spec, 'admin');
    return { created };
  }

  /** Removes a replica (admin API); its sessions move on their next turn. */
  async delete(id: string): Promise<boolean> {
    if (!this.entries.has(id)) return false;
    if (this.kv) await this.kv.delete(id);
    this.remove(id);
    return true;
  }

  /** A call found the replica broken: down now; the health checks bring it back. */
  markDown(id: string, reason: string): void {
    const e = this.entries.get(id);
    if (e === undefined) return;
    e.failures = Math.max(e.failures, DOWN_AFTER);
    e.lastError = reason;
    this.setUp(id, e, false, reason);
  }

  private async check(id: string, e: Entry, intervalMs: number, timeoutMs: number): Promise<void> {
    if (e.probing || this.stopped) return;
    const up = this.pools.replica(id)?.up ?? false;
    if (e.spec.health === 'none') {
      if (!up && Date.now() - e.downSince >= HALF_OPEN_INTERVALS * intervalMs) this.setUp(id, e, true, 'retrying after a failure (no health path)');
      return;
    }
    e.probing = true;
    let ok: boolean;
    try {
      ok = await probe(this.target(id) ?? { id, url: e.spec.url, kind: e.spec.kind }, e.spec.health, timeoutMs);
    } finally {
      e.probing = false;
    }
    if (this.entries.get(id) !== e || this.stopped) return;
    if (ok) {
      e.failures = 0;
      if (!up) {
        delete e.lastError;
        this.setUp(id, e, true, 'health check passed');
      }
    } else {
      e.failures++;
      if (up && e.failures >= DOWN_AFTER) {
        e.lastError = `health check ${e.spec.health} failed`;
        this.setUp(id, e, false, e.lastError);
      }
    }
  }

  private setUp(id: string, e: Entry, up: boolean, reason: string): void {
    const was = this.pools.replica(id)?.up;
    if (was === up) return;
    this.pools.setUp(id, up);
    routerMetrics.replicaUp.set({ replica: id }, up ? 1 : 0);
    if (up) {
      this.logger.info({ replica: id, reason }, 'replica is up: new sessions may use it');
      this.onRoom();
    } else {
      e.downSince = Date.now();
      this.logger.warn({ replica: id, reason, sessions: this.pools.load(id) }, 'replica is down: its sessions move on their next turn');
    }
  }

  private apply(spec: ReplicaSpec, source: ReplicaSource): void {
    const existing = this.entries.get(spec.id);
    const up = this.pools.replica(spec.id)?.up ?? true;
    if (existing) {
      existing.spec = spec;
      existing.source = source;
    } else {
      this.entries.set(spec.id, { spec, source, failures: 0, downSince: 0, probing: false });
      routerMetrics.replicaUp.set({ replica: spec.id }, up ? 1 : 0);
      routerMetrics.replicaLoad.set({ replica: spec.id }, this.pools.load(spec.id));
    }
    this.pools.upsertReplica({ id: spec.id, models: spec.models, capacity: spec.capacity, weight: spec.weight, up });
    this.onRoom();
  }

  private remove(id: string): void {
    if (!this.entries.delete(id)) return;
    this.pools.removeReplica(id);
    routerMetrics.replicaUp.remove({ replica: id });
    routerMetrics.replicaLoad.remove({ replica: id });
    this.logger.info({ replica: id }, 'replica removed: its sessions move on their next turn');
  }

  private seen(e: KvWatchEntry): void {
    if (e.operation !== 'PUT' || e.length === 0) {
      this.remove(e.key);
      return;
    }
    const spec = this.decode(e.value, e.key);
    if (spec === undefined) return;
    const cur = this.entries.get(spec.id);
    if (cur && JSON.stringify(cur.spec) === JSON.stringify(spec)) return;
    this.apply(spec, 'admin');
  }

  private decode(value: Uint8Array, key: string): ReplicaSpec | undefined {
    try {
      const stored = decodeJson<StoredReplica>(value);
      const r = parseReplicaSpec(stored.spec, `replica ${key}`);
      if (r.spec) return r.spec;
      this.logger.warn({ replica: key, problems: r.problems }, 'ignoring an invalid stored replica');
    } catch (err) {
      this.logger.warn({ err, replica: key }, 'ignoring an unreadable stored replica');
    }
    return undefined;
  }
}

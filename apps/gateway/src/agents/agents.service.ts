import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, digestOf, type AgentRecord, type AgentSpec } from '#libs/contracts';
import { NATS, openBucket } from '#libs/messaging';
import { KvDocuments, STORE, type Repositories } from '#libs/store';

interface Latest { version: string }

/**
 * How long a latest-version pointer read from MongoDB is trusted (the MongoDB backend has no KV
 * watch): a new version defined through another gateway instance is used by `name` references
 * within this time; through this instance, at once. `name@version` references are never stale.
 */
export const LATEST_CACHE_TTL_MS = 2000;

/** Agent definitions: immutable versions per tenant and a pointer to the latest (libs/store AgentsRepository). */
@Injectable()
export class AgentsService implements OnModuleInit, OnModuleDestroy {
  /** Versions are immutable, so resolved records are cached for good. */
  private readonly records = new Map<string, AgentRecord>();
  /**
   * Latest-version pointers by `<tenant>/<name>`. KV backend: kept current by a watch of the
   * pointers in am_agents (hits live until the watch says otherwise). MongoDB: a hit lives
   * LATEST_CACHE_TTL_MS.
   */
  private readonly latestCache = new Map<string, { version: string; until: number }>();
  private stopWatch?: () => void;
  constructor(@Inject(NATS) private readonly nc: NatsConnection, @Inject(STORE) private readonly store: Repositories) {}

  async onModuleInit(): Promise<void> {
    if (this.store.backend !== 'kv') return;
    // the pointers the KV repository writes: `<tenant>.latest.<name>` (libs/store README: KV layouts)
    const latest = new KvDocuments<Latest>(await openBucket(this.nc, BUCKETS.agents));
    const decode = (tok: string) => (tok.startsWith('=') ? Buffer.from(tok.slice(1), 'base64url').toString('utf8') : tok);
    this.stopWatch = await latest.watchChanges((key, v) => {
      const [t, , name] = key.split('.');
      const k = `${decode(t)}/${decode(name)}`;
      if (v) this.latestCache.set(k, { version: v.version, until: Infinity });
      else this.latestCache.delete(k);
    }, '*.latest.*');
  }

  onModuleDestroy(): void {
    this.stopWatch?.();
  }

  async put(tenantId: string, spec: AgentSpec): Promise<{ agent: AgentRecord; created: boolean }> {
    const digest = digestOf(spec);
    const { record, created } = await this.store.forTenant(tenantId).agents.putVersion({ ...spec, digest, createdAt: new Date().toISOString() });
    if (created) this.latestCache.set(`${tenantId}/${spec.name}`, { version: spec.version, until: this.until() });
    return { agent: record, created };
  }

  /** `name` (latest version) or `name@version`. */
  async resolve(tenantId: string, ref: string): Promise<AgentRecord | null> {
    const at = ref.indexOf('@');
    const name = at < 0 ? ref : ref.slice(0, at);
    const version = at < 0 ? await this.latestVersion(tenantId, name) : ref.slice(at + 1);
    if (version === undefined) return null;
    const k = `${tenantId}/${name}@${version}`;
    const hit = this.records.get(k);
    if (hit) return hit;
    const rec = await this.store.forTenant(tenantId).agents.get(name, version);
    if (rec) this.remember(rec);
    return rec;
  }

  private async latestVersion(tenantId: string, name: string): Promise<string | undefined> {
    const key = `${tenantId}/${name}`;
    const cached = this.latestCache.get(key);
    if (cached && cached.until > Date.now()) return cached.version;
    // only hits are cached: a cached miss could outlive a concurrent first definition
    const rec = await this.store.forTenant(tenantId).agents.latest(name);
    if (!rec) return undefined;
    this.remember(rec);
    const now = this.latestCache.get(key);
    if (!now || now.until <= Date.now()) this.latestCache.set(key, { version: rec.version, until: this.until() });
    return rec.version;
  }

  private remember(rec: AgentRecord): void {
    if (this.records.size > 50_000) this.records.clear();
    this.records.set(`${rec.tenantId}/${rec.name}@${rec.version}`, rec);
  }

  private until(): number {
    return this.store.backend === 'kv' ? Infinity : Date.now() + LATEST_CACHE_TTL_MS;
  }

  async versionsOf(tenantId: string, name: string): Promise<AgentRecord[]> {
    return this.store.forTenant(tenantId).agents.versions(name);
  }

  /** The latest version of each agent. */
  async list(tenantId: string): Promise<AgentRecord[]> {
    return this.store.forTenant(tenantId).agents.listLatest();
  }
}

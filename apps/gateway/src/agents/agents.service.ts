import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, conflict, digestOf, type AgentRecord, type AgentSpec } from '#libs/contracts';
import { NATS, openBucket } from '#libs/messaging';
import { KvDocuments } from '#libs/store';

interface Latest { version: string }

/** Agent definitions: immutable versions per tenant and a pointer to the latest. */
@Injectable()
export class AgentsService implements OnModuleInit, OnModuleDestroy {
  private versions!: KvDocuments<AgentRecord>;
  private latest!: KvDocuments<Latest>;
  /** Versions are immutable, so resolved records are cached for good. */
  private readonly records = new Map<string, AgentRecord>();
  /** Latest-version pointers by KV key, kept current by a watch. */
  private readonly latestCache = new Map<string, string>();
  private stopWatch?: () => void;
  constructor(@Inject(NATS) private readonly nc: NatsConnection) {}

  async onModuleInit(): Promise<void> {
    const kv = await openBucket(this.nc, BUCKETS.agents);
    this.versions = new KvDocuments(kv);
    this.latest = new KvDocuments(kv);
    this.stopWatch = await this.latest.watchChanges((key, v) => v ? this.latestCache.set(key, v.version) : this.latestCache.delete(key), '*.latest.*');
  }

  onModuleDestroy(): void {
    this.stopWatch?.();
  }

  async put(tenantId: string, spec: AgentSpec): Promise<{ agent: AgentRecord; created: boolean }> {
    const digest = digestOf(spec);
    const rec: AgentRecord = { ...spec, tenantId, digest, createdAt: new Date().toISOString() };
    if (await this.versions.create(tenantId, ['v', spec.name, spec.version], rec)) {
      await this.latest.put(tenantId, ['latest', spec.name], { version: spec.version });
      this.latestCache.set(this.latest.keyOf(tenantId, 'latest', spec.name), spec.version);
      return { agent: rec, created: true };
    }
    const existing = await this.versions.get(tenantId, 'v', spec.name, spec.version);
    if (existing && existing.digest === digest) return { agent: existing, created: false };
    throw conflict(`agent ${spec.name} version ${spec.version} already exists with a different definition; versions are immutable`, 'version_exists');
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
    const rec = await this.versions.get(tenantId, 'v', name, version);
    if (rec) this.records.set(k, rec);
    return rec;
  }

  private async latestVersion(tenantId: string, name: string): Promise<string | undefined> {
    const key = this.latest.keyOf(tenantId, 'latest', name);
    const cached = this.latestCache.get(key);
    if (cached) return cached;
    // only hits are cached: a cached miss could outlive a concurrent first definition
    const v = (await this.latest.get(tenantId, 'latest', name))?.version;
    if (v && !this.latestCache.has(key)) this.latestCache.set(key, v);
    return v;
  }

  async versionsOf(tenantId: string, name: string): Promise<AgentRecord[]> {
    return (await this.versions.list(tenantId, 'v', name)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** The latest version of each agent. */
  async list(tenantId: string): Promise<AgentRecord[]> {
    const latest = new Map<string, AgentRecord>();
    for (const a of await this.versions.list(tenantId, 'v')) {
      const cur = latest.get(a.name);
      if (!cur || a.createdAt > cur.createdAt) latest.set(a.name, a);
    }
    return [...latest.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}

import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, conflict, digestOf, type AgentRecord, type AgentSpec } from '#libs/contracts';
import { NATS, openBucket } from '#libs/messaging';
import { KvDocuments } from '#libs/store';

interface Latest { version: string }

/** Agent definitions: immutable versions per tenant and a pointer to the latest. */
@Injectable()
export class AgentsService implements OnModuleInit {
  private versions!: KvDocuments<AgentRecord>;
  private latest!: KvDocuments<Latest>;
  constructor(@Inject(NATS) private readonly nc: NatsConnection) {}

  async onModuleInit(): Promise<void> {
    const kv = await openBucket(this.nc, BUCKETS.agents);
    this.versions = new KvDocuments(kv);
    this.latest = new KvDocuments(kv);
  }

  async put(tenantId: string, spec: AgentSpec): Promise<{ agent: AgentRecord; created: boolean }> {
    const digest = digestOf(spec);
    const rec: AgentRecord = { ...spec, tenantId, digest, createdAt: new Date().toISOString() };
    if (await this.versions.create(tenantId, ['v', spec.name, spec.version], rec)) {
      await this.latest.put(tenantId, ['latest', spec.name], { version: spec.version });
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
    const version = at < 0 ? (await this.latest.get(tenantId, 'latest', name))?.version : ref.slice(at + 1);
    return version === undefined ? null : this.versions.get(tenantId, 'v', name, version);
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

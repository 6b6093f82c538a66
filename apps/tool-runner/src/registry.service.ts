import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  BUCKETS, conflict, digestOf, invalid, notFound, type PinnedTool, type ToolDefinition, type ToolRecord,
} from '#libs/contracts';
import { LOGGER, NATS, openBucket } from '#libs/messaging';
import { KvDocuments } from '#libs/store';
import type { Logger } from '#libs/telemetry';

interface Latest { version: string }
interface Disabled { disabled: boolean }

/**
 * The tool registry: immutable versions per tenant in JetStream KV, the latest version pointer, and
 * the disable flags, which every tool-runner instance watches so a disable applies at the next call.
 */
@Injectable()
export class ToolRegistry implements OnModuleInit, OnModuleDestroy {
  private kv!: KV;
  private versions!: KvDocuments<ToolRecord>;
  private latest!: KvDocuments<Latest>;
  private flags!: KvDocuments<Disabled>;
  /** Immutable versions never change, so they are cached for good. */
  private readonly cache = new Map<string, ToolRecord>();
  private readonly disabled = new Set<string>();
  private watch?: AsyncIterable<KvWatchEntry> & { stop(): void };

  constructor(@Inject(NATS) private readonly nc: NatsConnection, @Inject(LOGGER) private readonly logger: Logger) {}

  async onModuleInit(): Promise<void> {
    this.kv = await openBucket(this.nc, BUCKETS.tools);
    this.versions = new KvDocuments(this.kv);
    this.latest = new KvDocuments(this.kv);
    this.flags = new KvDocuments(this.kv);
    const w = await this.kv.watch({ key: '*.disabled.*' });
    this.watch = w;
    void (async () => {
      for await (const e of w) {
        const [tenant, , name] = e.key.split('.');
        const on = e.operation === 'PUT' && e.length > 0 && e.json<Disabled>().disabled;
        if (on) this.disabled.add(`${tenant}.${name}`); else this.disabled.delete(`${tenant}.${name}`);
      }
    })().catch((err) => this.logger.error({ err }, 'disable-flag watch ended'));
  }

  onModuleDestroy(): void {
    this.watch?.stop();
  }

  async put(tenantId: string, tool: ToolDefinition): Promise<{ tool: ToolRecord; created: boolean }> {
    const digest = digestOf(tool);
    const record: ToolRecord = { ...tool, tenantId, digest, createdAt: new Date().toISOString() };
    if (await this.versions.create(tenantId, ['v', tool.name, tool.version], record)) {
      await this.latest.put(tenantId, ['latest', tool.name], { version: tool.version });
      return { tool: record, created: true };
    }
    const existing = await this.versions.get(tenantId, 'v', tool.name, tool.version);
    if (existing && existing.digest === digest) return { tool: existing, created: false };
    throw conflict(`tool ${tool.name} version ${tool.version} already exists with a different definition; versions are immutable`, 'version_exists');
  }

  async get(tenantId: string, name: string, version: string): Promise<ToolRecord | null> {
    const k = `${tenantId}/${name}@${version}`;
    const hit = this.cache.get(k);
    if (hit) return hit;
    const rec = await this.versions.get(tenantId, 'v', name, version);
    if (rec) this.cache.set(k, rec);
    return rec;
  }

  async versionsOf(tenantId: string, name: string): Promise<ToolRecord[]> {
    return (await this.versions.list(tenantId, 'v', name)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async list(tenantId: string): Promise<Array<ToolRecord & { disabled: boolean }>> {
    const pointers = await this.latestAll(tenantId);
    const out: Array<ToolRecord & { disabled: boolean }> = [];
    for (const [name, version] of pointers) {
      const rec = await this.get(tenantId, name, version);
      if (rec) out.push({ ...rec, disabled: this.isDisabled(tenantId, name) });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  private async latestAll(tenantId: string): Promise<Map<string, string>> {
    const m = new Map<string, string>();
    for await (const key of await this.kv.keys(`${tenantId}.latest.*`)) {
      const name = key.split('.')[2];
      const l = await this.latest.get(tenantId, 'latest', name);
      if (l) m.set(name, l.version);
    }
    return m;
  }

  async setDisabled(tenantId: string, name: string, disabled: boolean): Promise<void> {
    if (!(await this.latest.get(tenantId, 'latest', name))) throw notFound(`tool ${name}`);
    await this.flags.put(tenantId, ['disabled', name], { disabled });
    if (disabled) this.disabled.add(`${tenantId}.${name}`); else this.disabled.delete(`${tenantId}.${name}`);
  }

  isDisabled(tenantId: string, name: string): boolean {
    return this.disabled.has(`${tenantId}.${name}`);
  }

  /** Pins `name` (latest) or `name@version` references. Unknown tools are an invalid argument. */
  async resolve(tenantId: string, refs: string[]): Promise<Record<string, PinnedTool>> {
    const out: Record<string, PinnedTool> = {};
    for (const ref of refs) {
      const at = ref.indexOf('@');
      const name = at < 0 ? ref : ref.slice(0, at);
      let version = at < 0 ? undefined : ref.slice(at + 1);
      if (version === undefined) version = (await this.latest.get(tenantId, 'latest', name))?.version;
      const rec = version === undefined ? null : await this.get(tenantId, name, version);
      if (!rec) throw invalid(`tool "${ref}" is not registered`, [{ field: 'tools', message: `unknown tool ${ref}` }]);
      out[name] = { name, version: rec.version, riskTier: rec.riskTier };
    }
    return out;
  }
}

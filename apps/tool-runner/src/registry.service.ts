import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  BUCKETS, conflict, digestOf, invalid, notFound, type PinnedTool, type ToolDefinition, type ToolDisabledReason, type ToolRecord,
} from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CONFIG, LOGGER, NATS, openBucket } from '#libs/messaging';
import { STORE, type Repositories, type ToolCatalogRepository } from '#libs/store';
import type { Logger } from '#libs/telemetry';
import type { EgressPolicy } from './guarded-fetch.js';
import { McpClientService, TOOL_RUNNER_OPTIONS, type ToolRunnerOptions } from './mcp-client.js';
import { MAX_RESULT_BYTES } from './result-store.js';

/** How long registration waits for an MCP server's tool list (callers ask over RPC with a 5 s timeout). */
const REGISTRATION_MCP_TIMEOUT_MS = 4000;

/** The disable flag of a tool name as the watch reads it (`reason` absent on flags written before reasons existed: manual). */
interface Disabled { disabled: boolean; reason?: ToolDisabledReason; version?: string; at?: string }

/** MongoDB backend (no KV watch): how long a tenant's disable flags are cached. */
export const DISABLED_CACHE_TTL_MS = 2000;

/**
 * The tool registry over the store's tool catalog (`store.forTenant(t).tools`, libs/store):
 * immutable versions per tenant, the latest version pointer, and the disable flags (with why).
 *
 * Disable flags are read on every call, so they are kept in memory:
 * - JetStream KV backend: every instance watches `<t>.disabled.*` in am_tools, so a disable
 *   through any instance applies at the next call;
 * - MongoDB backend (no KV watch): a tenant's flags are read from the store and cached for
 *   DISABLED_CACHE_TTL_MS (2 s): a disable through another instance applies within 2 s, through
 *   this one at once.
 */
@Injectable()
export class ToolRegistry implements OnModuleInit, OnModuleDestroy {
  /** Immutable versions never change, so they are cached for good. */
  private readonly cache = new Map<string, ToolRecord>();
  /** KV backend: disabled tool names (`tenant.name`) and why, kept by the watch. */
  private readonly disabled = new Map<string, ToolDisabledReason>();
  /** MongoDB backend: each tenant's disabled tools and why, with when they were read. */
  private readonly flagCache = new Map<string, { at: number; flags: Promise<Map<string, ToolDisabledReason>> }>();
  private watch?: AsyncIterable<KvWatchEntry> & { stop(): void };

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(CONFIG) private readonly config: AppConfig,
    private readonly mcp: McpClientService,
    @Inject(STORE) private readonly store: Repositories,
    @Optional() @Inject(TOOL_RUNNER_OPTIONS) private readonly opts?: ToolRunnerOptions,
  ) {}

  /** The egress policy of a tool's network calls (http, mcp; registration and execution). */
  egressPolicy(egress: readonly string[]): EgressPolicy {
    return {
      egress,
      allowLoopback: this.config.toolHttpAllowLoopback,
      maxResponseBytes: MAX_RESULT_BYTES,
      ...(this.opts?.resolve ? { resolve: this.opts.resolve } : {}),
    };
  }

  async onModuleInit(): Promise<void> {
    if (this.store.backend !== 'kv') return;
    // the KV repository keeps the flags in am_tools (`<t>.disabled.<name>`): watch them there
    const kv = await openBucket(this.nc, BUCKETS.tools);
    const w = await kv.watch({ key: '*.disabled.*' });
    this.watch = w;
    void (async () => {
      for await (const e of w) {
        const [tenant, , name] = e.key.split('.');
        const flag = e.operation === 'PUT' && e.length > 0 ? e.json<Disabled>() : null;
        if (flag?.disabled) this.disabled.set(`${tenant}.${name}`, flag.reason ?? 'manual'); else this.disabled.delete(`${tenant}.${name}`);
      }
    })().catch((err) => this.logger.error({ err }, 'disable-flag watch ended'));
  }

  onModuleDestroy(): void {
    this.watch?.stop();
  }

  private tools(tenantId: string): ToolCatalogRepository {
    return this.store.forTenant(tenantId).tools;
  }

  /**
   * Registers an immutable version. An mcp tool's server is asked for its tool list first and the
   * digest of the tool's definition there is recorded (`mcpDigest`); a new version clears a
   * `rug_pull` disable flag (not an operator's).
   */
  async put(tenantId: string, tool: ToolDefinition): Promise<{ tool: ToolRecord; created: boolean }> {
    const digest = digestOf(tool);
    const t = tool.transport;
    let mcpDigest: string | undefined;
    if (t.kind === 'mcp') {
      const existing = await this.tools(tenantId).get(tool.name, tool.version);
      if (existing) {
        if (existing.digest === digest) return { tool: existing, created: false };
        throw conflict(`tool ${tool.name} version ${tool.version} already exists with a different definition; versions are immutable`, 'version_exists');
      }
      // inside the callers' RPC timeout (RpcClient default 5 s)
      mcpDigest = await this.mcp.definitionDigest(t.url, t.tool, this.egressPolicy(tool.egress), Math.min(tool.timeoutMs, REGISTRATION_MCP_TIMEOUT_MS));
    }
    const { record, created } = await this.tools(tenantId).putVersion({ ...tool, digest, createdAt: new Date().toISOString(), ...(mcpDigest ? { mcpDigest } : {}) });
    if (created && mcpDigest && (await this.disabledReason(tenantId, tool.name)) === 'rug_pull') {
      await this.setDisabled(tenantId, tool.name, false);
      this.logger.info({ tenant: tenantId, tool: tool.name, version: tool.version }, 'new version registered: rug-pull disable lifted');
    }
    return { tool: record, created };
  }

  /** The record of the tool's latest version. */
  async latestRecord(tenantId: string, name: string): Promise<ToolRecord | null> {
    return this.tools(tenantId).latest(name);
  }

  async get(tenantId: string, name: string, version: string): Promise<ToolRecord | null> {
    const k = `${tenantId}/${name}@${version}`;
    const hit = this.cache.get(k);
    if (hit) return hit;
    const rec = await this.tools(tenantId).get(name, version);
    if (rec) this.cache.set(k, rec);
    return rec;
  }

  async versionsOf(tenantId: string, name: string): Promise<ToolRecord[]> {
    return this.tools(tenantId).versions(name);
  }

  async list(tenantId: string): Promise<Array<ToolRecord & { disabled: boolean; disabledReason?: string }>> {
    const [latest, flags] = await Promise.all([this.tools(tenantId).listLatest(), this.flagsOf(tenantId)]);
    return latest.map(({ disabled: _stored, ...rec }) => {
      const reason = flags.get(rec.name);
      return { ...rec, disabled: reason !== undefined, ...(reason ? { disabledReason: reason } : {}) };
    }).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Sets the disable flag, which every instance sees (KV: watched; MongoDB: within the cache TTL).
   * `reason` is `manual` (the kill switch, the default) or `rug_pull` (the executor saw the MCP
   * server change the tool's definition).
   */
  async setDisabled(tenantId: string, name: string, disabled: boolean, reason: ToolDisabledReason = 'manual', version?: string): Promise<void> {
    await this.tools(tenantId).setDisabled(name, disabled, { reason, ...(version ? { version } : {}), at: new Date().toISOString() });
    if (this.store.backend === 'kv') {
      if (disabled) this.disabled.set(`${tenantId}.${name}`, reason); else this.disabled.delete(`${tenantId}.${name}`);
    } else {
      this.flagCache.delete(tenantId);
    }
  }

  async isDisabled(tenantId: string, name: string): Promise<boolean> {
    return (await this.disabledReason(tenantId, name)) !== undefined;
  }

  /** Why the tool is disabled, or undefined when it is enabled. */
  async disabledReason(tenantId: string, name: string): Promise<ToolDisabledReason | undefined> {
    return (await this.flagsOf(tenantId)).get(name);
  }

  /** The tenant's disabled tools: from the watch (KV) or the store through a short cache (MongoDB). */
  private async flagsOf(tenantId: string): Promise<Map<string, ToolDisabledReason>> {
    if (this.store.backend === 'kv') {
      const out = new Map<string, ToolDisabledReason>();
      const prefix = `${tenantId}.`;
      for (const [k, r] of this.disabled) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), r);
      return out;
    }
    const now = Date.now();
    const hit = this.flagCache.get(tenantId);
    if (hit && now - hit.at < DISABLED_CACHE_TTL_MS) return hit.flags;
    const flags = this.tools(tenantId).disabledFlags().then((f) => new Map(Object.entries(f).map(([n, v]) => [n, v.reason] as const)));
    this.flagCache.set(tenantId, { at: now, flags });
    flags.catch(() => { if (this.flagCache.get(tenantId)?.flags === flags) this.flagCache.delete(tenantId); });
    if (this.flagCache.size > 10_000) this.flagCache.clear();
    return flags;
  }

  /** Pins `name` (latest) or `name@version` references. Unknown tools are an invalid argument. */
  async resolve(tenantId: string, refs: string[]): Promise<Record<string, PinnedTool>> {
    const out: Record<string, PinnedTool> = {};
    for (const ref of refs) {
      const at = ref.indexOf('@');
      const name = at < 0 ? ref : ref.slice(0, at);
      let version = at < 0 ? undefined : ref.slice(at + 1);
      if (version === undefined) version = (await this.tools(tenantId).latest(name))?.version;
      const rec = version === undefined ? null : await this.get(tenantId, name, version);
      if (!rec) throw invalid(`tool "${ref}" is not registered`, [{ field: 'tools', message: `unknown tool ${ref}` }]);
      out[name] = {
        name, version: rec.version, riskTier: rec.riskTier,
        // the orchestrator mints a delegation of this credential for each call (never the secret)
        ...(rec.credential ? { credential: { name: rec.credential.name, scopes: [...(rec.credential.scopes ?? [])] } } : {}),
      };
    }
    return out;
  }
}

import { Inject, Injectable, Optional, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  BUCKETS, conflict, digestOf, invalid, notFound, type PinnedTool, type ToolDefinition, type ToolDisabledReason, type ToolRecord,
} from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CONFIG, LOGGER, NATS, openBucket } from '#libs/messaging';
import { KvDocuments } from '#libs/store';
import type { Logger } from '#libs/telemetry';
import type { EgressPolicy } from './guarded-fetch.js';
import { McpClientService, TOOL_RUNNER_OPTIONS, type ToolRunnerOptions } from './mcp-client.js';
import { MAX_RESULT_BYTES } from './result-store.js';

/** How long registration waits for an MCP server's tool list (callers ask over RPC with a 5 s timeout). */
const REGISTRATION_MCP_TIMEOUT_MS = 4000;

interface Latest { version: string }
/** The disable flag of a tool name (`reason` absent on flags written before reasons existed: manual). */
interface Disabled { disabled: boolean; reason?: ToolDisabledReason; version?: string; at?: string }

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
  /** Disabled tool names (`tenant.name`) and why. */
  private readonly disabled = new Map<string, ToolDisabledReason>();
  private watch?: AsyncIterable<KvWatchEntry> & { stop(): void };

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(CONFIG) private readonly config: AppConfig,
    private readonly mcp: McpClientService,
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
    this.kv = await openBucket(this.nc, BUCKETS.tools);
    this.versions = new KvDocuments(this.kv);
    this.latest = new KvDocuments(this.kv);
    this.flags = new KvDocuments(this.kv);
    const w = await this.kv.watch({ key: '*.disabled.*' });
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

  /**
   * Registers an immutable version. An mcp tool's server is asked for its tool list first and the
   * digest of the tool's definition there is recorded (`mcpDigest`); a new version clears a
   * `rug_pull` disable flag (not an operator's).
   */
  async put(tenantId: string, tool: ToolDefinition): Promise<{ tool: ToolRecord; created: boolean }> {
    const digest = digestOf(tool);
    const same = (existing: ToolRecord): { tool: ToolRecord; created: boolean } => {
      if (existing.digest === digest) return { tool: existing, created: false };
      throw conflict(`tool ${tool.name} version ${tool.version} already exists with a different definition; versions are immutable`, 'version_exists');
    };
    const t = tool.transport;
    let mcpDigest: string | undefined;
    if (t.kind === 'mcp') {
      const existing = await this.versions.get(tenantId, 'v', tool.name, tool.version);
      if (existing) return same(existing);
      // inside the callers' RPC timeout (RpcClient default 5 s)
      mcpDigest = await this.mcp.definitionDigest(t.url, t.tool, this.egressPolicy(tool.egress), Math.min(tool.timeoutMs, REGISTRATION_MCP_TIMEOUT_MS));
    }
    const record: ToolRecord = { ...tool, tenantId, digest, createdAt: new Date().toISOString(), ...(mcpDigest ? { mcpDigest } : {}) };
    if (await this.versions.create(tenantId, ['v', tool.name, tool.version], record)) {
      await this.latest.put(tenantId, ['latest', tool.name], { version: tool.version });
      if (mcpDigest && this.disabledReason(tenantId, tool.name) === 'rug_pull') {
        await this.setDisabled(tenantId, tool.name, false);
        this.logger.info({ tenant: tenantId, tool: tool.name, version: tool.version }, 'new version registered: rug-pull disable lifted');
      }
      return { tool: record, created: true };
    }
    const existing = await this.versions.get(tenantId, 'v', tool.name, tool.version);
    if (existing) return same(existing);
    throw conflict(`tool ${tool.name} version ${tool.version} already exists with a different definition; versions are immutable`, 'version_exists');
  }

  /** The record of the tool's latest version. */
  async latestRecord(tenantId: string, name: string): Promise<ToolRecord | null> {
    const l = await this.latest.get(tenantId, 'latest', name);
    return l ? this.get(tenantId, name, l.version) : null;
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

  async list(tenantId: string): Promise<Array<ToolRecord & { disabled: boolean; disabledReason?: string }>> {
    const pointers = await this.latestAll(tenantId);
    const out: Array<ToolRecord & { disabled: boolean; disabledReason?: string }> = [];
    for (const [name, version] of pointers) {
      const rec = await this.get(tenantId, name, version);
      const reason = this.disabledReason(tenantId, name);
      if (rec) out.push({ ...rec, disabled: reason !== undefined, ...(reason ? { disabledReason: reason } : {}) });
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

  /**
   * Sets the disable flag, which every instance watches. `reason` is `manual` (the kill switch,
   * the default) or `rug_pull` (the executor saw the MCP server change the tool's definition).
   */
  async setDisabled(tenantId: string, name: string, disabled: boolean, reason: ToolDisabledReason = 'manual', version?: string): Promise<void> {
    if (!(await this.latest.get(tenantId, 'latest', name))) throw notFound(`tool ${name}`);
    const flag: Disabled = disabled ? { disabled, reason, ...(version ? { version } : {}), at: new Date().toISOString() } : { disabled };
    await this.flags.put(tenantId, ['disabled', name], flag);
    if (disabled) this.disabled.set(`${tenantId}.${name}`, reason); else this.disabled.delete(`${tenantId}.${name}`);
  }

  isDisabled(tenantId: string, name: string): boolean {
    return this.disabled.has(`${tenantId}.${name}`);
  }

  /** Why the tool is disabled, or undefined when it is enabled. */
  disabledReason(tenantId: string, name: string): ToolDisabledReason | undefined {
    return this.disabled.get(`${tenantId}.${name}`);
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
      out[name] = {
        name, version: rec.version, riskTier: rec.riskTier,
        // the orchestrator mints a delegation of this credential for each call (never the secret)
        ...(rec.credential ? { credential: { name: rec.credential.name, scopes: [...(rec.credential.scopes ?? [])] } } : {}),
      };
    }
    return out;
  }
}

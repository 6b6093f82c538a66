import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AgentmeshError, BUCKETS, notFound, unavailable,
  type AgentRecord, type RunSummary, type ToolDisabledReason, type ToolRecord, type UsageEvent, type UsageGroupBy, type UsageReport,
} from '#libs/contracts';
import { KvPolicyAdapter } from '#libs/policy';
import { decodeJson, encodeJson } from '#libs/messaging';
import {
  assertSessionId, memoForTenant, assertTenantId, auditCursor, auditOrder, byHour, checkRange, cleanAudit, cleanCredential,
  DEFAULT_SESSION_TTL_MS, emptyRollup, foldRollup, hourKey, hourRange, isoOf, pageSize, parseAuditCursor, sessionOf, sessionToWrite,
  usageReport, versionConflict, type HourRollup,
} from '../common.js';
import { KvDocuments, keyToken } from '../kv-documents.js';
import type {
  ApiKeyRecord, ApiKeysRepository, AgentsRepository, AuditEntry, AuditQuery, AuditRepository, BudgetDocument, BudgetsRepository,
  CheckpointsRepository, CredentialLookup, CredentialMetadata, CredentialRecord, CredentialsRepository, EncryptedSecretFields, Page, Repositories,
  RunIndexRepository, RunListQuery, SessionDocument, SessionsRepository, SessionWrite, StoreConfig, StoreOptions, TenantRecord,
  TenantRepositories, TenantsRepository, ToolCatalogRepository, ToolDisableFlag, UsageRollupsRepository, VersionedCatalog, Versioned,
} from '../repositories.js';

/**
 * Buckets the repositories add to those of BUCKETS (contracts). They are created on first use.
 * TODO(lead): move into libs/contracts channels.ts BUCKETS when wiring.
 */
export const STORE_BUCKETS = {
  credentials: 'am_credentials',
  audit: 'am_audit',
  /** Run index read model, `<tenant>.<runId>` → { row, seq }; rebuilt from the journal (replaces am_run_index). */
  runs: 'am_runs',
  checkpoints: 'am_store_checkpoints',
} as const;

const MAX_CAS_ATTEMPTS = 50;
const NATS_DOWN = /timeout|timed out|no responders|closed|disconnect|connection/i;

/**
 * Whether each NATS connection is currently disconnected, from its status events: while it is,
 * repository calls fail at once with `unavailable` instead of waiting for request timeouts.
 */
const disconnected = new WeakMap<NatsConnection, { down: boolean }>();

function watchConnection(nc: NatsConnection): void {
  if (disconnected.has(nc)) return;
  const state = { down: false };
  disconnected.set(nc, state);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'staleConnection' || s.type === 'close') state.down = true;
      else if (s.type === 'reconnect') state.down = false;
    }
  })().catch(() => undefined);
}

/** NATS transport failures become `unavailable`; everything else passes through. */
async function guardOn<T>(nc: NatsConnection, fn: () => Promise<T>): Promise<T> {
  if (disconnected.get(nc)?.down || nc.isClosed()) throw unavailable('the document store (JetStream KV) is unavailable: NATS is disconnected');
  try {
    return await fn();
  } catch (e) {
    if (e instanceof AgentmeshError) throw e;
    const err = e as Error;
    if (['TimeoutError', 'ClosedConnectionError', 'NoRespondersError', 'ConnectionError', 'DrainingConnectionError'].includes(err?.name) || NATS_DOWN.test(err?.message ?? '')) {
      throw unavailable('the document store (JetStream KV) is unavailable', e);
    }
    throw e;
  }
}

async function keysOf(kv: KV, filter: string): Promise<string[]> {
  const out: string[] = [];
  for await (const k of await kv.keys(filter)) out.push(k);
  return out;
}

async function valueOf<T>(kv: KV, key: string): Promise<T | null> {
  const e = await kv.get(key);
  return e && e.operation === 'PUT' && e.length > 0 ? decodeJson<T>(e.value) : null;
}

/** Reads a key, applies `fn`, writes at the read revision; retries on conflicts. */
async function casLoop<T, R>(docs: KvDocuments<T>, tenantId: string, parts: string[], fn: (cur: T | null) => { next: T | null; result: R }): Promise<R> {
  for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
    const cur = await docs.getWithRevision(tenantId, ...parts);
    const { next, result } = fn(cur?.value ?? null);
    if (next === null) return result;
    const ok = cur ? await docs.update(tenantId, parts, next, cur.revision) : await docs.create(tenantId, parts, next);
    if (ok) return result;
  }
  throw unavailable(`too much contention on ${parts.join('.')}; retry`);
}

interface Ctx {
  nc: NatsConnection;
  guard: <T>(fn: () => Promise<T>) => Promise<T>;
  now: () => number;
  sessionTtlMs: number;
  tenants: KvDocuments<TenantRecord>;
  tenantsKv: KV;
  apiKeys: KvDocuments<ApiKeyRecord>;
  agentsKv: KV;
  agents: KvDocuments<AgentRecord>;
  agentLatest: KvDocuments<{ version: string }>;
  toolsKv: KV;
  tools: KvDocuments<ToolRecord>;
  toolLatest: KvDocuments<{ version: string }>;
  toolFlags: KvDocuments<StoredToolFlag>;
  credentials: KvDocuments<CredentialRecord>;
  credentialsKv: KV;
  budgetsKv: KV;
  sessionsKv: KV;
  runsKv: KV;
  runs: KvDocuments<{ row: RunSummary; seq: number }>;
  usageKv: KV;
  usage: KvDocuments<HourRollup>;
  auditKv: KV;
  audit: KvDocuments<AuditEntry>;
  checkpointsKv: KV;
}

/** Opens (creating when missing) the buckets and returns the KV repositories. */
export async function createKvRepositories(nc: NatsConnection, config: StoreConfig, opts: StoreOptions = {}): Promise<Repositories> {
  const replicas = config.streamReplicas ?? 1;
  watchConnection(nc);
  const kvm = new Kvm(nc);
  const open = (name: string, ttl?: number) => kvm.create(name, { history: 1, replicas, ...(ttl ? { ttl } : {}) });
  const sessionTtlMs = config.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
  const [tenantsKv, apiKeysKv, agentsKv, toolsKv, credentialsKv, budgetsKv, sessionsKv, runsKv, usageKv, auditKv, checkpointsKv] = await guardOn(nc, () => Promise.all([
    open(BUCKETS.tenants), open(BUCKETS.apiKeys), open(BUCKETS.agents), open(BUCKETS.tools), open(STORE_BUCKETS.credentials),
    open(BUCKETS.budgets), open(BUCKETS.sessionRuns, Math.max(sessionTtlMs, 1000)), open(STORE_BUCKETS.runs),
    open(BUCKETS.usageRollups), open(STORE_BUCKETS.audit), open(STORE_BUCKETS.checkpoints),
  ]));
  // session histories: the gateway's bucket (provision() creates it with the same TTL); expiry = max age
  await guardOn(nc, () => alignTtl(nc, BUCKETS.sessionRuns, Math.max(sessionTtlMs, 1000)));
  const ctx: Ctx = {
    nc, guard: (fn) => guardOn(nc, fn), now: opts.now ?? Date.now, sessionTtlMs,
    tenants: new KvDocuments(tenantsKv), tenantsKv, apiKeys: new KvDocuments(apiKeysKv),
    agentsKv, agents: new KvDocuments(agentsKv), agentLatest: new KvDocuments(agentsKv),
    toolsKv, tools: new KvDocuments(toolsKv), toolLatest: new KvDocuments(toolsKv), toolFlags: new KvDocuments(toolsKv),
    credentials: new KvDocuments(credentialsKv), credentialsKv, budgetsKv, sessionsKv,
    runsKv, runs: new KvDocuments(runsKv), usageKv, usage: new KvDocuments(usageKv), auditKv, audit: new KvDocuments(auditKv),
    checkpointsKv,
  };
  // tenant policies: the policy engine's own KV adapter (`am_policy`, `<tenant>.rules`, KV revision as the CAS token)
  const policies = await guardOn(nc, () => KvPolicyAdapter.open(nc, { replicas }));
  return {
    backend: 'kv',
    tenants: new KvTenants(ctx),
    checkpoints: new KvCheckpoints(ctx),
    policies,
    forTenant: memoForTenant((tenantId: string): TenantRepositories => {
      const t = assertTenantId(tenantId);
      return {
        tenantId: t,
        apiKeys: new KvApiKeys(ctx, t),
        agents: new KvAgents(ctx, t),
        tools: new KvTools(ctx, t),
        credentials: new KvCredentials(ctx, t),
        budgets: new KvBudgets(ctx, t),
        sessions: new KvSessions(ctx, t),
        runs: new KvRunIndex(ctx, t),
        usage: new KvUsage(ctx, t),
        audit: new KvAudit(ctx, t),
      };
    }),
    close: async () => undefined,
  };
}

/** A bucket created earlier with another TTL gets the configured one (the stream's max_age). */
async function alignTtl(nc: NatsConnection, bucket: string, ttlMs: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const name = `KV_${bucket}`;
  const info = await jsm.streams.info(name);
  const want = ttlMs * 1_000_000;
  if (info.config.max_age === want) return;
  await jsm.streams.update(name, { ...info.config, max_age: want, duplicate_window: Math.min(info.config.duplicate_window ?? want, want) });
}

class KvTenants implements TenantsRepository {
  constructor(private readonly c: Ctx) {}
  async create(t: TenantRecord): Promise<boolean> {
    const id = assertTenantId(t.id);
    return this.c.guard(() => this.c.tenants.create(id, ['tenant'], { id, name: t.name, createdAt: t.createdAt }));
  }
  async get(id: string): Promise<TenantRecord | null> {
    return this.c.guard(async () => (isTenant(id) ? this.c.tenants.get(id, 'tenant') : null));
  }
  async list(q: { limit?: number; cursor?: string } = {}): Promise<Page<TenantRecord>> {
    const limit = pageSize(q.limit);
    return this.c.guard(async () => {
      const ids = (await keysOf(this.c.tenantsKv, '*.tenant')).map((k) => k.slice(0, k.indexOf('.'))).sort();
      const after = q.cursor === undefined ? ids : ids.filter((id) => id > q.cursor!);
      const page = after.slice(0, limit);
      const items = (await Promise.all(page.map((id) => this.c.tenants.get(id, 'tenant')))).filter((t): t is TenantRecord => t !== null);
      return { items, nextCursor: after.length > limit ? page[page.length - 1] : null };
    });
  }
}

const isTenant = (id: string): boolean => {
  try { assertTenantId(id); return true; } catch { return false; }
};

class KvApiKeys implements ApiKeysRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  async create(r: Omit<ApiKeyRecord, 'tenantId'>): Promise<boolean> {
    const rec: ApiKeyRecord = { id: r.id, tenantId: this.t, name: r.name, roles: [...r.roles], hash: r.hash, createdAt: r.createdAt, revokedAt: r.revokedAt ?? null };
    return this.c.guard(() => this.c.apiKeys.create(this.t, [r.id], rec));
  }
  async get(id: string): Promise<ApiKeyRecord | null> {
    return this.c.guard(() => this.c.apiKeys.get(this.t, id));
  }
  async list(): Promise<ApiKeyRecord[]> {
    return this.c.guard(async () => (await this.c.apiKeys.list(this.t)).sort((a, b) => a.id.localeCompare(b.id)));
  }
  async revoke(id: string, at: string): Promise<ApiKeyRecord | null> {
    return this.c.guard(() => casLoop(this.c.apiKeys, this.t, [id], (cur) => {
      if (!cur) return { next: null, result: null };
      if (cur.revokedAt) return { next: null, result: cur };
      const next = { ...cur, revokedAt: at };
      return { next, result: next };
    }));
  }
}

abstract class KvCatalog<R extends { name: string; version: string; digest: string; createdAt: string; tenantId: string }> implements VersionedCatalog<R> {
  constructor(
    protected readonly c: Ctx,
    protected readonly t: string,
    protected readonly kv: KV,
    protected readonly docs: KvDocuments<R>,
    protected readonly latestDocs: KvDocuments<{ version: string }>,
    private readonly kind: 'agent' | 'tool',
  ) {}

  async putVersion(record: Omit<R, 'tenantId'>): Promise<{ record: R; created: boolean }> {
    const rec = { ...record, tenantId: this.t } as R;
    return this.c.guard(async () => {
      if (await this.docs.create(this.t, ['v', rec.name, rec.version], rec)) {
        await this.latestDocs.put(this.t, ['latest', rec.name], { version: rec.version });
        return { record: rec, created: true };
      }
      const existing = await this.docs.get(this.t, 'v', rec.name, rec.version);
      if (existing && existing.digest === rec.digest) {
        // a retry after a crash between the version and the pointer completes the pointer
        if (!(await this.latestDocs.get(this.t, 'latest', rec.name))) await this.latestDocs.create(this.t, ['latest', rec.name], { version: rec.version });
        return { record: existing, created: false };
      }
      throw versionConflict(this.kind, rec.name, rec.version);
    });
  }
  async get(name: string, version: string): Promise<R | null> {
    return this.c.guard(() => this.docs.get(this.t, 'v', name, version));
  }
  async latest(name: string): Promise<R | null> {
    return this.c.guard(async () => {
      const p = await this.latestDocs.get(this.t, 'latest', name);
      return p ? this.docs.get(this.t, 'v', name, p.version) : null;
    });
  }
  async versions(name: string): Promise<R[]> {
    return this.c.guard(async () => (await this.docs.list(this.t, 'v', name)).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.version.localeCompare(b.version)));
  }
  protected async latestAll(): Promise<R[]> {
    const keys = await keysOf(this.kv, `${keyToken(this.t)}.latest.*`);
    const recs = await Promise.all(keys.map(async (k) => {
      const p = await valueOf<{ version: string }>(this.kv, k);
      const name = decodeToken(k.split('.')[2]);
      return p ? this.docs.get(this.t, 'v', name, p.version) : null;
    }));
    return recs.filter((r): r is Awaited<R> => r !== null).sort((a, b) => a.name.localeCompare(b.name)) as R[];
  }
}

const decodeToken = (tok: string): string => (tok.startsWith('=') ? Buffer.from(tok.slice(1), 'base64url').toString('utf8') : tok);

class KvAgents extends KvCatalog<AgentRecord> implements AgentsRepository {
  constructor(c: Ctx, t: string) { super(c, t, c.agentsKv, c.agents, c.agentLatest, 'agent'); }
  async listLatest(): Promise<AgentRecord[]> { return this.c.guard(() => this.latestAll()); }
}

/** A tool's disable flag as stored in am_tools (`<t>.disabled.<name>`). */
interface StoredToolFlag { disabled: boolean; reason?: ToolDisabledReason; version?: string; at?: string }

const disableFlagDoc = (f: Partial<ToolDisableFlag>): StoredToolFlag => ({
  disabled: true, reason: f.reason ?? 'manual', ...(f.version ? { version: f.version } : {}), at: f.at ?? new Date().toISOString(),
});
const flagOf = (f: StoredToolFlag): ToolDisableFlag => ({ reason: f.reason ?? 'manual', ...(f.version ? { version: f.version } : {}), ...(f.at ? { at: f.at } : {}) });

class KvTools extends KvCatalog<ToolRecord> implements ToolCatalogRepository {
  constructor(c: Ctx, t: string) { super(c, t, c.toolsKv, c.tools, c.toolLatest, 'tool'); }
  async listLatest(): Promise<Array<ToolRecord & { disabled: boolean }>> {
    return this.c.guard(async () => {
      const [recs, off] = await Promise.all([this.latestAll(), this.disabledSet()]);
      return recs.map((r) => ({ ...r, disabled: off.has(r.name) }));
    });
  }
  async setDisabled(name: string, disabled: boolean, flag: Partial<ToolDisableFlag> = {}): Promise<void> {
    return this.c.guard(async () => {
      if (!(await this.latestDocs.get(this.t, 'latest', name))) throw notFound(`tool ${name}`);
      // the document the tool-runner wrote before (and watches): `{disabled, reason, version?, at}`
      await this.c.toolFlags.put(this.t, ['disabled', name], disabled ? disableFlagDoc(flag) : { disabled: false });
    });
  }
  async disabledFlags(): Promise<Record<string, ToolDisableFlag>> {
    return this.c.guard(async () => {
      const keys = await keysOf(this.kv, `${keyToken(this.t)}.disabled.*`);
      const flags = await Promise.all(keys.map(async (k) => [decodeToken(k.split('.')[2]), await valueOf<StoredToolFlag>(this.kv, k)] as const));
      const out: Record<string, ToolDisableFlag> = {};
      for (const [name, f] of flags.sort((a, b) => a[0].localeCompare(b[0]))) if (f?.disabled === true) out[name] = flagOf(f);
      return out;
    });
  }
  async isDisabled(name: string): Promise<boolean> {
    return this.c.guard(async () => (await this.c.toolFlags.get(this.t, 'disabled', name))?.disabled === true);
  }
  async disabled(): Promise<string[]> {
    return this.c.guard(async () => [...(await this.disabledSet())].sort());
  }
  private async disabledSet(): Promise<Set<string>> {
    const keys = await keysOf(this.kv, `${keyToken(this.t)}.disabled.*`);
    const flags = await Promise.all(keys.map(async (k) => [decodeToken(k.split('.')[2]), (await valueOf<{ disabled: boolean }>(this.kv, k))?.disabled === true] as const));
    return new Set(flags.filter(([, on]) => on).map(([n]) => n));
  }
}

/**
 * `am_credentials` `<t>.<name>`: the layout the credential broker wrote before it used this
 * repository (record shape unchanged). Revoking deletes the key: its delete marker is the
 * tombstone that tells a revoked credential from one that never existed.
 */
class KvCredentials implements CredentialsRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  async put(name: string, secret: EncryptedSecretFields, metadata: CredentialMetadata, at: string): Promise<{ record: CredentialRecord; created: boolean }> {
    const clean = cleanCredential(secret, metadata);
    return this.c.guard(() => casLoop(this.c.credentials, this.t, [name], (cur) => {
      const next: CredentialRecord = { tenantId: this.t, name, secret: clean.secret, metadata: clean.metadata, createdAt: cur?.createdAt ?? at, updatedAt: at };
      return { next, result: { record: next, created: cur === null } };
    }));
  }
  async get(name: string): Promise<CredentialRecord | null> {
    return this.c.guard(() => this.c.credentials.get(this.t, name));
  }
  async lookup(name: string): Promise<CredentialLookup> {
    return this.c.guard(async () => {
      const e = await this.c.credentialsKv.get(this.c.credentials.keyOf(this.t, name));
      if (!e) return { state: 'absent' };
      if (e.operation !== 'PUT' || e.length === 0) return { state: 'revoked' };
      return { state: 'present', record: decodeJson<CredentialRecord>(e.value) };
    });
  }
  async list(): Promise<Array<Omit<CredentialRecord, 'secret'>>> {
    return this.c.guard(async () => (await this.c.credentials.list(this.t))
      .map(({ secret: _s, ...rest }) => rest)
      .sort((a, b) => a.name.localeCompare(b.name)));
  }
  async revoke(name: string, _at: string): Promise<boolean> {
    // the delete marker carries no payload, so the time is not kept on KV
    return this.c.guard(async () => {
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const cur = await this.c.credentials.getWithRevision(this.t, name);
        if (!cur) return false;
        try {
          // at the revision read: of two concurrent revocations exactly one reports true
          await this.c.credentialsKv.delete(this.c.credentials.keyOf(this.t, name), { previousSeq: cur.revision });
          return true;
        } catch (e) {
          if (!/wrong last sequence/i.test((e as Error).message)) throw e;
        }
      }
      throw unavailable(`too much contention on credential ${name}; retry`);
    });
  }
}

class KvBudgets implements BudgetsRepository {
  private readonly key: string;
  constructor(private readonly c: Ctx, t: string) { this.key = `${keyToken(t)}.budget`; }
  async get(): Promise<Versioned<BudgetDocument> | null> {
    return this.c.guard(async () => {
      const e = await this.c.budgetsKv.get(this.key);
      return e && e.operation === 'PUT' && e.length > 0 ? { value: decodeJson<BudgetDocument>(e.value), revision: e.revision } : null;
    });
  }
  async put(doc: BudgetDocument, expectedRevision: number): Promise<number | null> {
    return this.c.guard(async () => {
      try {
        return expectedRevision === 0
          ? await this.c.budgetsKv.create(this.key, encodeJson(doc))
          : await this.c.budgetsKv.update(this.key, encodeJson(doc), expectedRevision);
      } catch (err) {
        if (/wrong last sequence|key exists/i.test((err as Error).message)) return null;
        throw err;
      }
    });
  }
}

/** A session as stored in `am_session_runs`; documents written before the repository have no `expiresAt`. */
type StoredSession = Omit<SessionDocument, 'expiresAt'> & { expiresAt?: string };

/**
 * Session histories in `am_session_runs` `<t>.<sessionId>`, the layout the gateway wrote before the
 * repository (plus `expiresAt`), so existing sessions still read. The bucket's max age is the TTL
 * (each write replaces the key's only revision, restarting its age); reads also compare the
 * document's `expiresAt` (older documents: `updatedAt` + TTL) with the clock, so expiry is exact.
 */
class KvSessions implements SessionsRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  private key(sessionId: string): string {
    return `${this.t}.${sessionId}`;
  }
  /** The key's entry: null when there is none; `doc` null when it is a delete marker or expired. */
  private async read(sessionId: string): Promise<{ doc: SessionDocument | null; revision: number } | null> {
    const e = await this.c.sessionsKv.get(this.key(sessionId));
    if (!e) return null;
    if (e.operation !== 'PUT' || e.length === 0) return { doc: null, revision: e.revision };
    const stored = decodeJson<StoredSession>(e.value);
    let expiresAt = Date.parse(stored.expiresAt ?? '');
    if (Number.isNaN(expiresAt)) expiresAt = (Date.parse(stored.updatedAt) || e.created.getTime()) + this.c.sessionTtlMs;
    return { doc: expiresAt > this.c.now() ? sessionOf(stored, this.t, expiresAt) : null, revision: e.revision };
  }
  async get(sessionId: string): Promise<Versioned<SessionDocument> | null> {
    assertSessionId(sessionId);
    return this.c.guard(async () => {
      const cur = await this.read(sessionId);
      return cur?.doc ? { value: cur.doc, revision: cur.revision } : null;
    });
  }
  async put(session: SessionWrite, expectedRevision: number): Promise<Versioned<SessionDocument> | null> {
    const doc = sessionToWrite(this.t, session, this.c.now(), this.c.sessionTtlMs);
    return this.c.guard(async () => {
      const cur = await this.read(doc.sessionId);
      // an expired session counts as none: written at 0 it starts over, its old revision no longer names it
      if (expectedRevision === 0 ? cur?.doc : !cur?.doc || cur.revision !== expectedRevision) return null;
      try {
        const value = encodeJson(doc);
        const revision = cur ? await this.c.sessionsKv.update(this.key(doc.sessionId), value, cur.revision) : await this.c.sessionsKv.create(this.key(doc.sessionId), value);
        return { value: doc, revision };
      } catch (err) {
        if (/wrong last sequence|key exists/i.test((err as Error).message)) return null;
        throw err;
      }
    });
  }
}

class KvRunIndex implements RunIndexRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  async upsert(summary: RunSummary, throughSeq: number): Promise<boolean> {
    const row = this.own(summary);
    // sequence 0 (the gateway's `queued` row at admission): any stored row is at or past it, so
    // this is a plain create, one write and no read
    if (throughSeq <= 0) return this.c.guard(() => this.c.runs.create(this.t, [row.id], { row, seq: throughSeq }));
    return this.c.guard(() => casLoop(this.c.runs, this.t, [row.id], (cur) =>
      cur && cur.seq >= throughSeq ? { next: null, result: false } : { next: { row, seq: throughSeq }, result: true }));
  }
  async replace(summary: RunSummary, throughSeq: number): Promise<void> {
    const row = this.own(summary);
    return this.c.guard(() => this.c.runs.put(this.t, [row.id], { row, seq: throughSeq }));
  }
  async get(runId: string): Promise<RunSummary | null> {
    return this.c.guard(async () => (await this.c.runs.get(this.t, runId))?.row ?? null);
  }
  async list(q: RunListQuery = {}): Promise<Page<RunSummary>> {
    const limit = pageSize(q.limit);
    checkRange(q.from, q.to);
    const from = q.from === undefined ? undefined : isoOf(q.from);
    const to = q.to === undefined ? undefined : isoOf(q.to);
    return this.c.guard(async () => {
      const prefix = `${keyToken(this.t)}.`;
      let ids = (await keysOf(this.c.runsKv, `${prefix}*`)).map((k) => decodeToken(k.slice(prefix.length))).sort().reverse();
      if (q.cursor !== undefined) ids = ids.filter((id) => id < q.cursor!);
      const out: RunSummary[] = [];
      for (let i = 0; i < ids.length && out.length <= limit; i += 64) {
        const rows = await Promise.all(ids.slice(i, i + 64).map((id) => this.c.runs.get(this.t, id)));
        for (const r of rows) {
          if (!r) continue;
          const s = r.row;
          if ((q.status && s.status !== q.status) || (q.agent && s.agent !== q.agent) || (from && s.createdAt < from) || (to && s.createdAt >= to)) continue;
          out.push(s);
          if (out.length > limit) break;
        }
      }
      const items = out.slice(0, limit);
      return { items, nextCursor: out.length > limit ? items[items.length - 1].id : null };
    });
  }
  private own(s: RunSummary): RunSummary {
    if (s.tenantId !== this.t) throw new AgentmeshError('invalid_argument', `run ${s.id} belongs to another tenant`);
    return { ...s };
  }
}

class KvUsage implements UsageRollupsRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  async apply(events: ReadonlyArray<{ seq: number; usage: UsageEvent }>): Promise<void> {
    const mine = events.filter((e) => e.usage.tenantId === this.t);
    if (mine.length !== events.length) throw new AgentmeshError('invalid_argument', 'usage events of another tenant');
    return this.c.guard(async () => {
      for (const [hour, list] of byHour(mine)) {
        await casLoop(this.c.usage, this.t, ['h', hour], (cur) => ({ next: foldRollup(cur ?? emptyRollup(this.t, hour), list), result: undefined }));
      }
    });
  }
  async report(q: { from: string; to: string; groupBy?: UsageGroupBy }): Promise<UsageReport> {
    const { lo, hi } = hourRange(q.from, q.to);
    return this.c.guard(async () => {
      const prefix = `${keyToken(this.t)}.h.`;
      const hours = (await keysOf(this.c.usageKv, `${prefix}*`)).map((k) => k.slice(prefix.length)).filter((h) => h >= lo && h < hi);
      const docs = (await Promise.all(hours.map((h) => this.c.usage.get(this.t, 'h', h)))).filter((d): d is HourRollup => d !== null);
      return usageReport(this.t, isoOf(q.from), isoOf(q.to), q.groupBy, docs);
    });
  }
}

class KvAudit implements AuditRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  async append(entry: Omit<AuditEntry, 'tenantId'>): Promise<boolean> {
    const e = cleanAudit(this.t, entry);
    return this.c.guard(() => this.c.audit.create(this.t, [hourKey(Date.parse(e.at)), e.id], e));
  }
  async search(q: AuditQuery = {}): Promise<Page<AuditEntry>> {
    const limit = pageSize(q.limit);
    checkRange(q.from, q.to);
    const from = q.from === undefined ? undefined : isoOf(q.from);
    const to = q.to === undefined ? undefined : isoOf(q.to);
    const cursor = q.cursor === undefined ? undefined : parseAuditCursor(q.cursor);
    return this.c.guard(async () => {
      const prefix = `${keyToken(this.t)}.`;
      const byHourKeys = new Map<string, string[]>();
      for (const k of await keysOf(this.c.auditKv, `${prefix}*.*`)) {
        const hour = k.slice(prefix.length, k.indexOf('.', prefix.length));
        if (from && hour < hourKey(Date.parse(from))) continue;
        if (to && hour > hourKey(Date.parse(to))) continue;
        if (cursor && hour > hourKey(Date.parse(cursor.at))) continue;
        (byHourKeys.get(hour) ?? byHourKeys.set(hour, []).get(hour)!).push(k);
      }
      const out: AuditEntry[] = [];
      for (const hour of [...byHourKeys.keys()].sort().reverse()) {
        const entries = (await Promise.all(byHourKeys.get(hour)!.map((k) => valueOf<AuditEntry>(this.c.auditKv, k))))
          .filter((e): e is AuditEntry => e !== null)
          .filter((e) => (!from || e.at >= from) && (!to || e.at < to) && (!q.action || e.action === q.action)
            && (!cursor || e.at < cursor.at || (e.at === cursor.at && e.id < cursor.id)))
          .sort(auditOrder);
        out.push(...entries);
        if (out.length > limit) break;
      }
      const items = out.slice(0, limit);
      return { items, nextCursor: out.length > limit ? auditCursor(items[items.length - 1]) : null };
    });
  }
}

class KvCheckpoints implements CheckpointsRepository {
  constructor(private readonly c: Ctx) {}
  async get(name: string): Promise<number> {
    return this.c.guard(async () => (await valueOf<{ seq: number }>(this.c.checkpointsKv, keyToken(name)))?.seq ?? 0);
  }
  async advance(name: string, seq: number): Promise<void> {
    const key = keyToken(name);
    return this.c.guard(async () => {
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        const e = await this.c.checkpointsKv.get(key);
        const cur = e && e.operation === 'PUT' && e.length > 0 ? decodeJson<{ seq: number }>(e.value).seq : 0;
        if (cur >= seq) return;
        try {
          if (e) await this.c.checkpointsKv.update(key, JSON.stringify({ seq }), e.revision);
          else await this.c.checkpointsKv.create(key, JSON.stringify({ seq }));
          return;
        } catch (err) {
          if (!/wrong last sequence|key exists/i.test((err as Error).message)) throw err;
        }
      }
      throw unavailable(`too much contention on checkpoint ${name}`);
    });
  }
  async reset(name: string): Promise<void> {
    return this.c.guard(async () => { await this.c.checkpointsKv.put(keyToken(name), JSON.stringify({ seq: 0 })); });
  }
}

import mongoose, { type Connection } from 'mongoose';
import {
  AgentmeshError, canonicalJson, isTenantId, notFound, unavailable,
  type AgentRecord, type JsonValue, type RunSummary, type ToolDisabledReason, type ToolRecord, type UsageEvent, type UsageGroupBy, type UsageReport,
} from '#libs/contracts';
import {
  assertSessionId, memoForTenant, assertTenantId, auditCursor, byHour, checkRange, cleanAudit, cleanCredential,
  DEFAULT_SESSION_TTL_MS, emptyRollup, foldRollup, hourRange, isoOf, pageSize, parseAuditCursor, sessionOf, sessionToWrite,
  usageReport, versionConflict, type HourRollup, type Tally,
} from '../common.js';
import type {
  ApiKeyRecord, ApiKeysRepository, AgentsRepository, AuditEntry, AuditQuery, AuditRepository, BudgetDocument, BudgetsRepository,
  CheckpointsRepository, CredentialLookup, CredentialMetadata, CredentialRecord, CredentialsRepository, EncryptedSecretFields, Page, Repositories,
  RunIndexRepository, RunListQuery, SessionDocument, SessionsRepository, SessionWrite, StoreConfig, StoreOptions, TenantRecord,
  TenantRepositories, TenantsRepository, ToolCatalogRepository, ToolDisableFlag, UsageRollupsRepository, VersionedCatalog, Versioned,
} from '../repositories.js';
import {
  modelsOf, type ApiKeyDoc, type AuditDoc, type CredentialDoc, type GroupTally, type LatestDoc, type Models, type RollupDoc,
  type RunDoc, type SessionDoc, type VersionDoc,
} from './schemas.js';
import { PolicyConflictError, PolicyRuleError, type PolicyAdapter, type TenantPolicy, type TenantRule } from '#libs/policy';

export const DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 2000;
const MAX_CAS_ATTEMPTS = 50;

/** Driver errors that mean "MongoDB cannot be reached right now". */
const UNREACHABLE = new Set([
  'MongoServerSelectionError', 'MongooseServerSelectionError', 'MongoNetworkError', 'MongoNetworkTimeoutError',
  'MongoNotConnectedError', 'MongoTopologyClosedError', 'MongoPoolClearedError', 'PoolClearedError', 'PoolClosedError',
  'MongoPoolClosedError', 'DisconnectedError',
]);

export function isUnreachable(e: unknown): boolean {
  const err = e as { name?: string; message?: string; hasErrorLabel?: (l: string) => boolean } | null;
  if (!err || typeof err !== 'object') return false;
  if (err.name && UNREACHABLE.has(err.name)) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN', 'EHOSTUNREACH'].includes(code)) return true;
  if (typeof err.hasErrorLabel === 'function' && (err.hasErrorLabel('ResetPool') || err.hasErrorLabel('PoolRequestedRetry'))) return true;
  return /before initial connection is complete|connection .* closed|client must be connected|topology is closed/i.test(err.message ?? '');
}

const isDuplicate = (e: unknown): boolean => (e as { code?: number })?.code === 11000;

/** Every repository call goes through here: an unreachable MongoDB is `unavailable` (503), at once. */
async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof AgentmeshError) throw e;
    if (isUnreachable(e)) throw unavailable('the document store (MongoDB) is unavailable', e);
    throw e;
  }
}

interface Ctx {
  m: Models;
  now: () => number;
  sessionTtlMs: number;
}

/**
 * Connects with mongoose and returns the MongoDB repositories. Commands are not buffered while
 * disconnected (bufferCommands: false) and wait at most `mongodbServerSelectionTimeoutMs` for a
 * server, so an outage fails requests fast with `unavailable`; the driver keeps monitoring the
 * server and the same connection serves again once MongoDB is back. The initial connection must
 * succeed (start-up fails with `unavailable` otherwise, and the service is restarted).
 */
export async function createMongoRepositories(uri: string, config: StoreConfig, opts: StoreOptions & { dbName?: string } = {}): Promise<Repositories> {
  const hasDb = /^mongodb(\+srv)?:\/\/[^/]+\/[^?/]+/.test(uri);
  const conn: Connection = mongoose.createConnection(uri, {
    bufferCommands: false,
    autoIndex: false,
    autoCreate: false,
    serverSelectionTimeoutMS: config.mongodbServerSelectionTimeoutMs ?? DEFAULT_SERVER_SELECTION_TIMEOUT_MS,
    heartbeatFrequencyMS: 2000,
    ...(opts.dbName ? { dbName: opts.dbName } : hasDb ? {} : { dbName: 'agentmesh' }),
  });
  conn.on('error', () => undefined); // surfaced per operation as `unavailable`
  try {
    await guard(() => conn.asPromise());
    const m = modelsOf(conn);
    // indexes are created explicitly (autoIndex off): createIndex only, so no collection has to be
    // created first and existing indexes are left alone
    await guard(() => Promise.all(Object.values(m).map((model) => (model as mongoose.Model<unknown>).createIndexes())));
    const ctx: Ctx = {
      m, now: opts.now ?? Date.now,
      sessionTtlMs: config.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS,
    };
    return {
      backend: 'mongo',
      tenants: new MongoTenants(ctx),
      checkpoints: new MongoCheckpoints(ctx),
      policies: new MongoPolicies(ctx),
      forTenant: memoForTenant((tenantId: string): TenantRepositories => {
        const t = assertTenantId(tenantId);
        return {
          tenantId: t,
          apiKeys: new MongoApiKeys(ctx, t),
          agents: new MongoAgents(ctx, t),
          tools: new MongoTools(ctx, t),
          credentials: new MongoCredentials(ctx, t),
          budgets: new MongoBudgets(ctx, t),
          sessions: new MongoSessions(ctx, t),
          runs: new MongoRunIndex(ctx, t),
          usage: new MongoUsage(ctx, t),
          audit: new MongoAudit(ctx, t),
        };
      }),
      close: async () => { await conn.close(); },
    };
  } catch (e) {
    await conn.close().catch(() => undefined);
    throw e;
  }
}

class MongoTenants implements TenantsRepository {
  constructor(private readonly c: Ctx) {}
  async create(t: TenantRecord): Promise<boolean> {
    const id = assertTenantId(t.id);
    return guard(async () => {
      try {
        await this.c.m.tenants.create({ tenantId: id, name: t.name, createdAt: t.createdAt });
        return true;
      } catch (e) {
        if (isDuplicate(e)) return false;
        throw e;
      }
    });
  }
  async get(id: string): Promise<TenantRecord | null> {
    return guard(async () => {
      const d = await this.c.m.tenants.findOne({ tenantId: String(id) }).lean().exec();
      return d ? { id: d.tenantId, name: d.name, createdAt: d.createdAt } : null;
    });
  }
  async list(q: { limit?: number; cursor?: string } = {}): Promise<Page<TenantRecord>> {
    const limit = pageSize(q.limit);
    return guard(async () => {
      const docs = await this.c.m.tenants.find(q.cursor !== undefined ? { tenantId: { $gt: String(q.cursor) } } : {})
        .sort({ tenantId: 1 }).limit(limit + 1).lean().exec();
      const items = docs.slice(0, limit).map((d) => ({ id: d.tenantId, name: d.name, createdAt: d.createdAt }));
      return { items, nextCursor: docs.length > limit ? items[items.length - 1].id : null };
    });
  }
}

const apiKeyOf = (d: ApiKeyDoc): ApiKeyRecord => ({
  id: d.id, tenantId: d.tenantId, name: d.name, roles: [...d.roles], hash: d.hash, createdAt: d.createdAt, revokedAt: d.revokedAt ?? null,
});

class MongoApiKeys implements ApiKeysRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  async create(r: Omit<ApiKeyRecord, 'tenantId'>): Promise<boolean> {
    return guard(async () => {
      try {
        await this.c.m.apiKeys.create({ tenantId: this.t, id: r.id, name: r.name, roles: [...r.roles], hash: r.hash, createdAt: r.createdAt, revokedAt: r.revokedAt ?? null });
        return true;
      } catch (e) {
        if (isDuplicate(e)) return false;
        throw e;
      }
    });
  }
  async get(id: string): Promise<ApiKeyRecord | null> {
    return guard(async () => {
      const d = await this.c.m.apiKeys.findOne({ tenantId: this.t, id: String(id) }).lean().exec();
      return d ? apiKeyOf(d) : null;
    });
  }
  async list(): Promise<ApiKeyRecord[]> {
    return guard(async () => (await this.c.m.apiKeys.find({ tenantId: this.t }).sort({ id: 1 }).lean().exec()).map(apiKeyOf));
  }
  async revoke(id: string, at: string): Promise<ApiKeyRecord | null> {
    return guard(async () => {
      // only the first revocation sets the time
      await this.c.m.apiKeys.updateOne({ tenantId: this.t, id: String(id), revokedAt: null }, { $set: { revokedAt: at } }).exec();
      return this.get(id);
    });
  }
}

abstract class MongoCatalog<R extends { name: string; version: string; digest: string; createdAt: string; tenantId: string }> implements VersionedCatalog<R> {
  constructor(
    protected readonly c: Ctx,
    protected readonly t: string,
    protected readonly versionsModel: mongoose.Model<VersionDoc>,
    protected readonly latestModel: mongoose.Model<LatestDoc>,
    private readonly kind: 'agent' | 'tool',
  ) {}

  async putVersion(record: Omit<R, 'tenantId'>): Promise<{ record: R; created: boolean }> {
    const rec = { ...record, tenantId: this.t } as R;
    return guard(async () => {
      try {
        await this.versionsModel.create({ tenantId: this.t, name: rec.name, version: rec.version, digest: rec.digest, createdAt: rec.createdAt, body: canonicalJson(rec as unknown as JsonValue) });
      } catch (e) {
        if (!isDuplicate(e)) throw e;
        const existing = await this.get(rec.name, rec.version);
        if (!existing || existing.digest !== rec.digest) throw versionConflict(this.kind, rec.name, rec.version);
        // a retry after a crash between the version and the pointer completes the pointer
        await this.pointTo(rec.name, rec.version, rec.createdAt, true);
        return { record: existing, created: false };
      }
      await this.pointTo(rec.name, rec.version, rec.createdAt, false);
      return { record: rec, created: true };
    });
  }

  /** Moves the latest pointer (keeps the disable flag); `onlyIfMissing` for repairs. */
  private async pointTo(name: string, version: string, at: string, onlyIfMissing: boolean): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.latestModel.updateOne(
          { tenantId: this.t, name },
          onlyIfMissing ? { $setOnInsert: { version, updatedAt: at } } : { $set: { version, updatedAt: at } },
          { upsert: true },
        ).exec();
        return;
      } catch (e) {
        if (!isDuplicate(e)) throw e; // two first upserts raced: the second becomes an update
      }
    }
  }

  protected recordOf(d: VersionDoc): R {
    return JSON.parse(d.body) as R;
  }
  async get(name: string, version: string): Promise<R | null> {
    return guard(async () => {
      const d = await this.versionsModel.findOne({ tenantId: this.t, name: String(name), version: String(version) }).lean().exec();
      return d ? this.recordOf(d) : null;
    });
  }
  async latest(name: string): Promise<R | null> {
    return guard(async () => {
      const p = await this.latestModel.findOne({ tenantId: this.t, name: String(name) }).lean().exec();
      return p ? this.get(p.name, p.version) : null;
    });
  }
  async versions(name: string): Promise<R[]> {
    return guard(async () => (await this.versionsModel.find({ tenantId: this.t, name: String(name) }).sort({ createdAt: 1, version: 1 }).lean().exec())
      .map((d) => this.recordOf(d)));
  }
  protected async latestAll(): Promise<Array<R & { disabledFlag: boolean }>> {
    const pointers = await this.latestModel.find({ tenantId: this.t }).sort({ name: 1 }).lean().exec();
    const recs = await Promise.all(pointers.map(async (p) => {
      const r = await this.get(p.name, p.version);
      return r ? { ...r, disabledFlag: p.disabled === true } : null;
    }));
    return recs.filter((r) => r !== null) as Array<R & { disabledFlag: boolean }>;
  }
}

class MongoAgents extends MongoCatalog<AgentRecord> implements AgentsRepository {
  constructor(c: Ctx, t: string) { super(c, t, c.m.agentVersions, c.m.agentLatest, 'agent'); }
  async listLatest(): Promise<AgentRecord[]> {
    return guard(async () => (await this.latestAll()).map(({ disabledFlag: _d, ...r }) => r as AgentRecord));
  }
}

class MongoTools extends MongoCatalog<ToolRecord> implements ToolCatalogRepository {
  constructor(c: Ctx, t: string) { super(c, t, c.m.toolVersions, c.m.toolLatest, 'tool'); }
  async listLatest(): Promise<Array<ToolRecord & { disabled: boolean }>> {
    return guard(async () => (await this.latestAll()).map(({ disabledFlag, ...r }) => ({ ...(r as ToolRecord), disabled: disabledFlag })));
  }
  async setDisabled(name: string, disabled: boolean, flag: Partial<ToolDisableFlag> = {}): Promise<void> {
    const set = disabled
      ? { disabled: true, disabledReason: flag.reason ?? 'manual', disabledVersion: flag.version ?? null, disabledAt: flag.at ?? new Date().toISOString() }
      : { disabled: false, disabledReason: null, disabledVersion: null, disabledAt: null };
    return guard(async () => {
      const r = await this.latestModel.updateOne({ tenantId: this.t, name: String(name) }, { $set: set }).exec();
      if (r.matchedCount === 0) throw notFound(`tool ${name}`);
    });
  }
  async disabledFlags(): Promise<Record<string, ToolDisableFlag>> {
    return guard(async () => {
      const out: Record<string, ToolDisableFlag> = {};
      for (const d of await this.latestModel.find({ tenantId: this.t, disabled: true }).sort({ name: 1 }).lean().exec()) {
        out[d.name] = {
          reason: (d.disabledReason ?? 'manual') as ToolDisabledReason,
          ...(d.disabledVersion ? { version: d.disabledVersion } : {}), ...(d.disabledAt ? { at: d.disabledAt } : {}),
        };
      }
      return out;
    });
  }
  async isDisabled(name: string): Promise<boolean> {
    return guard(async () => (await this.latestModel.findOne({ tenantId: this.t, name: String(name) }).lean().exec())?.disabled === true);
  }
  async disabled(): Promise<string[]> {
    return guard(async () => (await this.latestModel.find({ tenantId: this.t, disabled: true }).sort({ name: 1 }).lean().exec()).map((d) => d.name));
  }
}

type LiveCredentialDoc = CredentialDoc & Required<Pick<CredentialDoc, 'secret' | 'metadata'>>;
/** A live credential (not the tombstone of a revoked one). */
const isLive = (d: CredentialDoc): d is LiveCredentialDoc => (d.revokedAt === null || d.revokedAt === undefined) && !!d.secret && !!d.metadata;
const credentialOf = (d: LiveCredentialDoc): CredentialRecord => ({
  tenantId: d.tenantId,
  name: d.name,
  secret: { v: 1, alg: 'A256GCM', dataKeyId: d.secret.dataKeyId, nonce: d.secret.nonce, ciphertext: d.secret.ciphertext, tag: d.secret.tag },
  metadata: metadataOf(d.metadata),
  createdAt: d.createdAt,
  updatedAt: d.updatedAt,
});
const metadataOf = (m: LiveCredentialDoc['metadata']): CredentialMetadata => ({
  kind: m.kind,
  ...(m.allowedTools ? { allowedTools: [...m.allowedTools] } : {}),
  ...(m.scopes ? { scopes: [...m.scopes] } : {}),
  ...(m.description !== undefined && m.description !== null ? { description: m.description } : {}),
});
const CREDENTIAL_CAS_ATTEMPTS = 20;

/**
 * `credentials`: one document per (tenant, name). Revoking replaces it with a tombstone (no
 * `secret`, no `metadata`, `revokedAt` set), so a revoked credential is told apart from one that
 * never existed. Writes are conditional on what was read (`revokedAt`, `createdAt`, `updatedAt`),
 * with `$set`/`$setOnInsert`/`replaceOne` only (what jongodb supports too).
 */
class MongoCredentials implements CredentialsRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  private find(name: string) {
    return this.c.m.credentials.findOne({ tenantId: this.t, name: String(name) }).lean().exec() as Promise<CredentialDoc | null>;
  }
  async put(name: string, secret: EncryptedSecretFields, metadata: CredentialMetadata, at: string): Promise<{ record: CredentialRecord; created: boolean }> {
    const clean = cleanCredential(secret, metadata);
    const key = { tenantId: this.t, name: String(name) };
    return guard(async () => {
      for (let attempt = 0; attempt < CREDENTIAL_CAS_ATTEMPTS; attempt++) {
        const cur = await this.find(name);
        if (cur && isLive(cur)) {
          const r = await this.c.m.credentials.updateOne(
            { ...key, revokedAt: null, createdAt: cur.createdAt },
            { $set: { secret: clean.secret, metadata: clean.metadata, updatedAt: at } },
          ).exec();
          if (r.matchedCount === 1) return { record: credentialOf({ ...key, ...clean, createdAt: cur.createdAt, updatedAt: at }), created: false };
          continue;
        }
        const fresh: LiveCredentialDoc = { ...key, secret: clean.secret, metadata: clean.metadata, createdAt: at, updatedAt: at, revokedAt: null };
        if (cur) {
          // the tombstone of a revoked credential: the name starts over
          const r = await this.c.m.credentials.replaceOne({ ...key, revokedAt: cur.revokedAt, updatedAt: cur.updatedAt }, fresh).exec();
          if (r.matchedCount === 1) return { record: credentialOf(fresh), created: true };
          continue;
        }
        try {
          const { tenantId: _t, name: _n, ...rest } = fresh;
          const r = await this.c.m.credentials.updateOne(key, { $setOnInsert: rest }, { upsert: true }).exec();
          if (r.upsertedCount === 1) return { record: credentialOf(fresh), created: true };
        } catch (e) {
          if (!isDuplicate(e)) throw e;
        }
      }
      throw unavailable(`too much contention on credential ${name}; retry`);
    });
  }
  async get(name: string): Promise<CredentialRecord | null> {
    return guard(async () => {
      const d = await this.find(name);
      return d && isLive(d) ? credentialOf(d) : null;
    });
  }
  async lookup(name: string): Promise<CredentialLookup> {
    return guard(async () => {
      const d = await this.find(name);
      if (!d) return { state: 'absent' };
      return isLive(d) ? { state: 'present', record: credentialOf(d) } : { state: 'revoked' };
    });
  }
  async list(): Promise<Array<Omit<CredentialRecord, 'secret'>>> {
    return guard(async () => ((await this.c.m.credentials.find({ tenantId: this.t }).sort({ name: 1 }).lean().exec()) as CredentialDoc[])
      .filter(isLive)
      .map((d) => { const { secret: _s, ...rest } = credentialOf(d); return rest; }));
  }
  async revoke(name: string, at: string): Promise<boolean> {
    const key = { tenantId: this.t, name: String(name) };
    return guard(async () => {
      for (let attempt = 0; attempt < CREDENTIAL_CAS_ATTEMPTS; attempt++) {
        const cur = await this.find(name);
        if (!cur || !isLive(cur)) return false;
        // the tombstone keeps no ciphertext and no metadata
        const r = await this.c.m.credentials.replaceOne(
          { ...key, revokedAt: null, updatedAt: cur.updatedAt },
          { ...key, createdAt: cur.createdAt, updatedAt: at, revokedAt: at },
        ).exec();
        if (r.matchedCount === 1) return true;
      }
      throw unavailable(`too much contention on credential ${name}; retry`);
    });
  }
}

class MongoBudgets implements BudgetsRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  async get(): Promise<Versioned<BudgetDocument> | null> {
    return guard(async () => {
      const d = await this.c.m.budgets.findOne({ tenantId: this.t }).lean().exec();
      return d ? { value: JSON.parse(d.doc) as BudgetDocument, revision: d.rev } : null;
    });
  }
  async put(doc: BudgetDocument, expectedRevision: number): Promise<number | null> {
    const body = JSON.stringify(doc);
    return guard(async () => {
      if (expectedRevision === 0) {
        try {
          await this.c.m.budgets.create({ tenantId: this.t, rev: 1, doc: body });
          return 1;
        } catch (e) {
          if (isDuplicate(e)) return null;
          throw e;
        }
      }
      const r = await this.c.m.budgets.updateOne({ tenantId: this.t, rev: expectedRevision }, { $set: { doc: body, rev: expectedRevision + 1 } }).exec();
      return r.matchedCount === 1 ? expectedRevision + 1 : null;
    });
  }
}

/**
 * Tenant policy rules in `policies`, one document per tenant: the rules as JSON text and `rev` for
 * compare-and-set (insert at revision 0, `updateOne({rev})` otherwise). A lost race throws
 * PolicyConflictError, which the policy engine retries; a tenant id that is not one, PolicyRuleError.
 */
class MongoPolicies implements PolicyAdapter {
  constructor(private readonly c: Ctx) {}

  async loadPolicy(): Promise<readonly TenantPolicy[]> {
    return guard(async () => {
      const docs = await this.c.m.policies.find({}).lean().exec();
      return docs.map((d) => ({ tenant: d.tenantId, rules: JSON.parse(d.rules) as TenantRule[], revision: d.rev }));
    });
  }

  async loadTenantPolicy(tenant: string): Promise<TenantPolicy> {
    if (!isTenantId(tenant)) return { tenant, rules: [], revision: 0 };
    return guard(async () => {
      const d = await this.c.m.policies.findOne({ tenantId: tenant }).lean().exec();
      return d ? { tenant, rules: JSON.parse(d.rules) as TenantRule[], revision: d.rev } : { tenant, rules: [], revision: 0 };
    });
  }

  async savePolicy(tenant: string, rules: readonly TenantRule[], expectedRevision: number): Promise<number> {
    if (!isTenantId(tenant)) throw new PolicyRuleError(`"${String(tenant)}" is not a tenant id`, { fields: [{ field: 'tenant', message: 'not a tenant id' }] });
    const body = { rules: JSON.stringify(rules), updatedAt: new Date(this.c.now()).toISOString() };
    const lost = () => new PolicyConflictError(`the policy of ${tenant} changed since revision ${expectedRevision}`);
    return guard(async () => {
      if (expectedRevision === 0) {
        try {
          await this.c.m.policies.create({ tenantId: tenant, rev: 1, ...body });
          return 1;
        } catch (e) {
          if (isDuplicate(e)) throw lost();
          throw e;
        }
      }
      const r = await this.c.m.policies.updateOne({ tenantId: tenant, rev: expectedRevision }, { $set: { ...body, rev: expectedRevision + 1 } }).exec();
      if (r.matchedCount !== 1) throw lost();
      return expectedRevision + 1;
    });
  }
}

/** The live session, or null: an expired document is absent even before MongoDB's TTL monitor removes it. */
const liveSession = (d: SessionDoc | null, tenantId: string, nowMs: number): Versioned<SessionDocument> | null => {
  const expiresAt = d ? new Date(d.expiresAt).getTime() : Number.NaN;
  return d && expiresAt > nowMs ? { value: sessionOf(d, tenantId, expiresAt), revision: d.rev } : null;
};

/**
 * Session histories in `session_runs`, one document per session with `rev` for compare-and-set and
 * `expiresAt` (write time + TTL) under a TTL index; reads compare `expiresAt` with the clock.
 */
class MongoSessions implements SessionsRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  async get(sessionId: string): Promise<Versioned<SessionDocument> | null> {
    assertSessionId(sessionId);
    return guard(async () => liveSession(await this.c.m.sessions.findOne({ tenantId: this.t, sessionId }).lean().exec(), this.t, this.c.now()));
  }
  async put(session: SessionWrite, expectedRevision: number): Promise<Versioned<SessionDocument> | null> {
    const now = this.c.now();
    const doc = sessionToWrite(this.t, session, now, this.c.sessionTtlMs);
    const set = { runs: doc.runs, createdAt: doc.createdAt, updatedAt: doc.updatedAt, expiresAt: new Date(doc.expiresAt) };
    const { sessionId } = doc;
    return guard(async () => {
      const cur = await this.c.m.sessions.findOne({ tenantId: this.t, sessionId }).lean().exec();
      const live = liveSession(cur, this.t, now);
      if (expectedRevision === 0 ? live : !live || live.revision !== expectedRevision) return null;
      if (!cur) {
        try {
          await this.c.m.sessions.create({ tenantId: this.t, sessionId, rev: 1, ...set });
          return { value: doc, revision: 1 };
        } catch (e) {
          if (isDuplicate(e)) return null;
          throw e;
        }
      }
      // over the stored document (live at `expectedRevision`, or expired and not yet removed)
      const r = await this.c.m.sessions.updateOne({ tenantId: this.t, sessionId, rev: cur.rev }, { $set: { ...set, rev: cur.rev + 1 } }).exec();
      return r.matchedCount === 1 ? { value: doc, revision: cur.rev + 1 } : null;
    });
  }
}

const runOf = (d: RunDoc): RunSummary => ({
  id: d.id, tenantId: d.tenantId, agent: d.agent, agentVersion: d.agentVersion,
  ...(d.sessionId ? { sessionId: d.sessionId } : {}),
  status: d.status, ...(d.error ? { error: { code: d.error.code, message: d.error.message } } : {}),
  steps: d.steps, createdAt: d.createdAt, updatedAt: d.updatedAt,
});

class MongoRunIndex implements RunIndexRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  private docOf(s: RunSummary, throughSeq: number): RunDoc {
    if (s.tenantId !== this.t) throw new AgentmeshError('invalid_argument', `run ${s.id} belongs to another tenant`);
    return {
      tenantId: this.t, id: s.id, agent: s.agent, agentVersion: s.agentVersion, ...(s.sessionId ? { sessionId: s.sessionId } : {}),
      status: s.status, ...(s.error ? { error: { code: s.error.code, message: s.error.message } } : {}),
      steps: s.steps, createdAt: s.createdAt, updatedAt: s.updatedAt, throughSeq,
    };
  }
  async upsert(summary: RunSummary, throughSeq: number): Promise<boolean> {
    const doc = this.docOf(summary, throughSeq);
    return guard(async () => {
      try {
        // matches only an older row; with none, the upsert inserts, and an insert that collides
        // with a newer row on the unique (tenantId, id) index means "already at or past it"
        const r = await this.c.m.runs.replaceOne({ tenantId: this.t, id: doc.id, throughSeq: { $lt: throughSeq } }, doc, { upsert: true }).exec();
        return r.matchedCount + r.upsertedCount > 0;
      } catch (e) {
        if (isDuplicate(e)) return false;
        throw e;
      }
    });
  }
  async replace(summary: RunSummary, throughSeq: number): Promise<void> {
    const doc = this.docOf(summary, throughSeq);
    return guard(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.c.m.runs.replaceOne({ tenantId: this.t, id: doc.id }, doc, { upsert: true }).exec();
          return;
        } catch (e) {
          if (!isDuplicate(e) || attempt >= 2) throw e;
        }
      }
    });
  }
  async get(runId: string): Promise<RunSummary | null> {
    return guard(async () => {
      const d = await this.c.m.runs.findOne({ tenantId: this.t, id: String(runId) }).lean().exec();
      return d ? runOf(d) : null;
    });
  }
  async list(q: RunListQuery = {}): Promise<Page<RunSummary>> {
    const limit = pageSize(q.limit);
    checkRange(q.from, q.to);
    const filter: Record<string, unknown> = { tenantId: this.t };
    if (q.status) filter.status = String(q.status);
    if (q.agent) filter.agent = String(q.agent);
    if (q.from !== undefined || q.to !== undefined) {
      filter.createdAt = { ...(q.from !== undefined ? { $gte: isoOf(q.from) } : {}), ...(q.to !== undefined ? { $lt: isoOf(q.to) } : {}) };
    }
    if (q.cursor !== undefined) filter.id = { $lt: String(q.cursor) };
    return guard(async () => {
      const docs = await this.c.m.runs.find(filter).sort({ id: -1 }).limit(limit + 1).lean().exec();
      const items = docs.slice(0, limit).map(runOf);
      return { items, nextCursor: docs.length > limit ? items[items.length - 1].id : null };
    });
  }
}

const tallyOf = (t: Tally): Tally => ({ m: t.m, calls: t.calls, in: t.in, out: t.out });
const groupsToMap = (g: GroupTally[]): Record<string, Tally> => Object.fromEntries(g.map(({ key, ...t }) => [key, tallyOf(t)]));
const mapToGroups = (m: Record<string, Tally>): GroupTally[] => Object.entries(m).map(([key, t]) => ({ key, ...tallyOf(t) }));
const rollupOf = (d: RollupDoc): HourRollup => ({
  tenantId: d.tenantId, hour: d.hour, throughSeq: d.throughSeq, total: tallyOf(d.total),
  agent: groupsToMap(d.agent), model: groupsToMap(d.model), tool: groupsToMap(d.tool),
});

class MongoUsage implements UsageRollupsRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  async apply(events: ReadonlyArray<{ seq: number; usage: UsageEvent }>): Promise<void> {
    if (events.some((e) => e.usage.tenantId !== this.t)) throw new AgentmeshError('invalid_argument', 'usage events of another tenant');
    return guard(async () => {
      for (const [hour, list] of byHour(events)) await this.applyHour(hour, list);
    });
  }
  private async applyHour(hour: string, list: Array<{ seq: number; usage: UsageEvent }>): Promise<void> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const cur = await this.c.m.usage.findOne({ tenantId: this.t, hour }).lean().exec();
      const next = foldRollup(cur ? rollupOf(cur) : emptyRollup(this.t, hour), list);
      if (!next) return;
      const set = { throughSeq: next.throughSeq, total: next.total, agent: mapToGroups(next.agent), model: mapToGroups(next.model), tool: mapToGroups(next.tool) };
      if (!cur) {
        try {
          await this.c.m.usage.create({ tenantId: this.t, hour, rev: 1, ...set });
          return;
        } catch (e) {
          if (!isDuplicate(e)) throw e;
          continue;
        }
      }
      const r = await this.c.m.usage.updateOne({ tenantId: this.t, hour, rev: cur.rev }, { $set: { ...set, rev: cur.rev + 1 } }).exec();
      if (r.matchedCount === 1) return;
    }
    throw unavailable(`too much contention on the usage rollup of ${hour}; retry`);
  }
  async report(q: { from: string; to: string; groupBy?: UsageGroupBy }): Promise<UsageReport> {
    const { lo, hi } = hourRange(q.from, q.to);
    return guard(async () => {
      const docs = await this.c.m.usage.find({ tenantId: this.t, hour: { $gte: lo, $lt: hi } }).lean().exec();
      return usageReport(this.t, isoOf(q.from), isoOf(q.to), q.groupBy, docs.map(rollupOf));
    });
  }
}

const auditOf = (d: AuditDoc): AuditEntry => ({
  id: d.id, tenantId: d.tenantId, at: d.at, action: d.action, actor: d.actor, outcome: d.outcome as AuditEntry['outcome'],
  ...(d.resource !== undefined && d.resource !== null ? { resource: d.resource } : {}),
  ...(d.detail ? { detail: JSON.parse(d.detail) as Record<string, string> } : {}),
});

class MongoAudit implements AuditRepository {
  constructor(private readonly c: Ctx, private readonly t: string) {}
  async append(entry: Omit<AuditEntry, 'tenantId'>): Promise<boolean> {
    const e = cleanAudit(this.t, entry);
    return guard(async () => {
      try {
        await this.c.m.audit.create({
          tenantId: this.t, id: e.id, at: e.at, action: e.action, actor: e.actor, outcome: e.outcome,
          ...(e.resource !== undefined ? { resource: e.resource } : {}), ...(e.detail ? { detail: JSON.stringify(e.detail) } : {}),
        });
        return true;
      } catch (err) {
        if (isDuplicate(err)) return false;
        throw err;
      }
    });
  }
  async search(q: AuditQuery = {}): Promise<Page<AuditEntry>> {
    const limit = pageSize(q.limit);
    checkRange(q.from, q.to);
    const and: Array<Record<string, unknown>> = [{ tenantId: this.t }];
    if (q.action) and.push({ action: String(q.action) });
    if (q.from !== undefined) and.push({ at: { $gte: isoOf(q.from) } });
    if (q.to !== undefined) and.push({ at: { $lt: isoOf(q.to) } });
    if (q.cursor !== undefined) {
      const c = parseAuditCursor(q.cursor);
      and.push({ $or: [{ at: { $lt: c.at } }, { at: c.at, id: { $lt: c.id } }] });
    }
    return guard(async () => {
      const docs = await this.c.m.audit.find({ $and: and }).sort({ at: -1, id: -1 }).limit(limit + 1).lean().exec();
      const items = docs.slice(0, limit).map(auditOf);
      return { items, nextCursor: docs.length > limit ? auditCursor(items[items.length - 1]) : null };
    });
  }
}

class MongoCheckpoints implements CheckpointsRepository {
  constructor(private readonly c: Ctx) {}
  async get(name: string): Promise<number> {
    return guard(async () => (await this.c.m.checkpoints.findOne({ _id: String(name) }).lean().exec())?.seq ?? 0);
  }
  async advance(name: string, seq: number): Promise<void> {
    return guard(async () => {
      try {
        await this.c.m.checkpoints.updateOne({ _id: String(name), seq: { $lt: seq } }, { $set: { seq } }, { upsert: true }).exec();
      } catch (e) {
        if (!isDuplicate(e)) throw e; // already at or past seq
      }
    });
  }
  async reset(name: string): Promise<void> {
    return guard(async () => { await this.c.m.checkpoints.updateOne({ _id: String(name) }, { $set: { seq: 0 } }, { upsert: true }).exec(); });
  }
}

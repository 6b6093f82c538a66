import type {
  AgentRecord, JsonObject, Role, RunStatus, RunSummary, ToolDisabledReason, ToolRecord, UsageEvent, UsageGroupBy, UsageReport,
} from '#libs/contracts';
import type { PolicyAdapter } from '#libs/policy';

/**
 * The repositories of documents and read models, one interface per aggregate. Two implementations
 * keep the same contract (libs/store/src/test/repository-contract.ts): JetStream KV (the embedded
 * default) and MongoDB through mongoose (production, when MONGODB_URI is set).
 *
 * Tenant scoping: everything that belongs to a tenant is reached only through
 * `repos.forTenant(tenantId)`, which validates the id (TENANT_ID grammar) and returns repositories
 * bound to it; their methods take no tenant argument, so a query that forgets the tenant cannot be
 * written. Only the tenant registry itself and the projectors' checkpoints are platform-wide.
 *
 * Every method returns plain JSON-safe objects (never ORM documents, never storage fields such as
 * `_id`, revisions or watermarks unless the method says so). A store that cannot be reached fails
 * fast with AgentmeshError('unavailable') (HTTP 503 / gRPC UNAVAILABLE).
 */
export interface Repositories {
  readonly backend: 'kv' | 'mongo';
  /** The tenant registry (platform-wide: the tenant id is the record's key). */
  readonly tenants: TenantsRepository;
  /** Positions of the read-model projectors (platform-wide). */
  readonly checkpoints: CheckpointsRepository;
  /**
   * Tenant policy rules (Casbin, libs/policy): the PolicyAdapter the policy engine loads and saves
   * through, one document per tenant with compare-and-set on its revision. Platform-wide because
   * the engine loads every tenant's rules at start; each method names (and validates) its tenant.
   */
  readonly policies: PolicyAdapter;
  /** Repositories bound to one tenant. Throws AgentmeshError('invalid_argument') for a malformed id. */
  forTenant(tenantId: string): TenantRepositories;
  /** Closes what the repositories opened (the MongoDB connection); the NATS connection is the caller's. */
  close(): Promise<void>;
}

export interface TenantRepositories {
  readonly tenantId: string;
  readonly apiKeys: ApiKeysRepository;
  readonly agents: AgentsRepository;
  readonly tools: ToolCatalogRepository;
  readonly credentials: CredentialsRepository;
  readonly budgets: BudgetsRepository;
  readonly sessions: SessionsRepository;
  /** Read model: the run index. */
  readonly runs: RunIndexRepository;
  /** Read model: hourly usage rollups. */
  readonly usage: UsageRollupsRepository;
  /** Read model: the audit trail. */
  readonly audit: AuditRepository;
}

/** A value with the revision it was read at, for compare-and-set writes. */
export interface Versioned<T> {
  value: T;
  /** Opaque, increases with every write; 0 never names a stored value. */
  revision: number;
}

/** One page of a newest-first listing; `nextCursor` is null on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

// ---- tenants and keys ---------------------------------------------------------------------------

export interface TenantRecord {
  id: string;
  name: string;
  createdAt: string;
}

export interface TenantsRepository {
  /** Stores a new tenant; false when the id is taken (nothing is changed then). */
  create(tenant: TenantRecord): Promise<boolean>;
  get(id: string): Promise<TenantRecord | null>;
  /** All tenants by id (ascending), `limit` at a time after `cursor` (the last id of the previous page). */
  list(q?: { limit?: number; cursor?: string }): Promise<Page<TenantRecord>>;
}

export interface ApiKeyRecord {
  id: string;
  tenantId: string;
  name: string;
  roles: Role[];
  /** sha256 (hex) of the whole key; the key itself is never stored. */
  hash: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface ApiKeysRepository {
  /** Stores a new key record (its tenant is the scope's); false when the id exists. */
  create(record: Omit<ApiKeyRecord, 'tenantId'>): Promise<boolean>;
  get(id: string): Promise<ApiKeyRecord | null>;
  /** The tenant's keys by id. */
  list(): Promise<ApiKeyRecord[]>;
  /** Marks the key revoked at `at` (the first revocation's time is kept); null when there is no such key. */
  revoke(id: string, at: string): Promise<ApiKeyRecord | null>;
}

// ---- agents and tools (immutable versions) ------------------------------------------------------

/**
 * Immutable versions and the latest pointer. `putVersion` is idempotent: the same body again
 * (same digest) returns the stored record with `created: false`; a different body under an
 * existing name+version is AgentmeshError('conflict', reason `version_exists`).
 */
export interface VersionedCatalog<R extends { name: string; version: string; digest: string; createdAt: string }> {
  putVersion(record: Omit<R, 'tenantId'>): Promise<{ record: R; created: boolean }>;
  get(name: string, version: string): Promise<R | null>;
  /** The version registered last (the latest pointer), or null. */
  latest(name: string): Promise<R | null>;
  /** Every version of one name, oldest first (by createdAt). */
  versions(name: string): Promise<R[]>;
}

export type AgentsRepository = VersionedCatalog<AgentRecord> & {
  /** The latest version of every agent, by name. */
  listLatest(): Promise<AgentRecord[]>;
};

/** Why a tool is disabled: `manual` (the kill switch) or `rug_pull` (its MCP server changed the definition of `version`). */
export interface ToolDisableFlag {
  reason: ToolDisabledReason;
  version?: string;
  at?: string;
}

export type ToolCatalogRepository = VersionedCatalog<ToolRecord> & {
  /** The latest version of every tool with its disable flag, by name. */
  listLatest(): Promise<Array<ToolRecord & { disabled: boolean }>>;
  /**
   * Sets the disable flag of a tool (all versions), with why when disabling (default `manual`);
   * enabling forgets the reason. AgentmeshError('not_found') for an unknown tool.
   */
  setDisabled(name: string, disabled: boolean, flag?: Partial<ToolDisableFlag>): Promise<void>;
  isDisabled(name: string): Promise<boolean>;
  /** Names of the tenant's disabled tools. */
  disabled(): Promise<string[]>;
  /** The tenant's disabled tools with why, by name (a flag stored without a reason reads `manual`). */
  disabledFlags(): Promise<Record<string, ToolDisableFlag>>;
};

// ---- credentials (ciphertext only) --------------------------------------------------------------

/**
 * A secret as the credential broker's envelope encryption produced it (AES-256-GCM under the
 * tenant's data key). There is deliberately no field for plaintext: the store rejects records with
 * any field it does not know.
 */
export interface EncryptedSecretFields {
  v: 1;
  alg: 'A256GCM';
  /** The tenant data key the secret was encrypted with. */
  dataKeyId: string;
  /** base64url */
  nonce: string;
  /** base64url */
  ciphertext: string;
  /** base64url */
  tag: string;
}

/** Non-secret facts about a credential (`kind`, `allowedTools`, `scopes`...). */
export interface CredentialMetadata {
  kind: string;
  allowedTools?: string[];
  scopes?: string[];
  description?: string;
}

export interface CredentialRecord {
  tenantId: string;
  name: string;
  secret: EncryptedSecretFields;
  metadata: CredentialMetadata;
  createdAt: string;
  updatedAt: string;
}

/**
 * What is stored under a credential name: a live credential, a revoked one (it existed and was
 * revoked: its ciphertext is gone, a tombstone remains), or nothing (never stored).
 */
export type CredentialLookup =
  | { state: 'present'; record: CredentialRecord }
  | { state: 'revoked' }
  | { state: 'absent' };

/**
 * The credential broker's records. Only the envelope (ciphertext, nonce, tag, data key id) and
 * metadata are stored, never plaintext. Master-key rotation re-wraps the tenants' data keys (the
 * broker's key ring) and never rewrites these records, so there is no compare-and-set write here:
 * `put` keeps `createdAt` of a live credential by itself (KV: compare-and-set on the revision;
 * MongoDB: a filtered update).
 */
export interface CredentialsRepository {
  /**
   * Creates or replaces; `created` is true when there was no live credential (never stored, or
   * revoked: a revoked name starts over with a new `createdAt`). AgentmeshError('invalid_argument')
   * if anything but encrypted fields and metadata is given.
   */
  put(name: string, secret: EncryptedSecretFields, metadata: CredentialMetadata, at: string): Promise<{ record: CredentialRecord; created: boolean }>;
  /** The live credential, or null (revoked or never stored). */
  get(name: string): Promise<CredentialRecord | null>;
  /** Tells a revoked credential from one that never existed (delegations answer `credential_revoked`, not `not_found`). */
  lookup(name: string): Promise<CredentialLookup>;
  /** Live credentials: names and metadata only (no ciphertext), by name. */
  list(): Promise<Array<Omit<CredentialRecord, 'secret'>>>;
  /**
   * Revokes at `at`: the ciphertext is removed and a tombstone remains (KV: the key's delete marker;
   * MongoDB: the document without `secret`/`metadata`, with `revokedAt`). True when a live
   * credential was revoked, false when there was none (never stored, or already revoked).
   */
  revoke(name: string, at: string): Promise<boolean>;
}

// ---- budgets -------------------------------------------------------------------------------------

/**
 * The tenant's budget document. Its shape (limits, spent, holds in micro-dollars) belongs to the
 * cost-governor; the store keeps it whole and only guarantees compare-and-set writes.
 */
export type BudgetDocument = JsonObject;

export interface BudgetsRepository {
  get(): Promise<Versioned<BudgetDocument> | null>;
  /**
   * Writes if the stored revision is still `expectedRevision` (0: only if there is none yet).
   * Returns the new revision, or null when another writer got there first.
   */
  put(doc: BudgetDocument, expectedRevision: number): Promise<number | null>;
}

// ---- sessions (the runs of a conversation, with a sliding TTL) ------------------------------------

/** One run of a session as the session history shows it (the gateway fills and updates it). */
export interface SessionRunRecord {
  runId: string;
  agent: string;
  agentVersion: string;
  status: RunStatus;
  /** The run's input as compact JSON, cut by the caller (the store keeps it as given). */
  input: string | null;
  /** The output of a completed run, summarised the same way. */
  output: string | null;
  error: { code: string; message: string } | null;
  createdAt: string;
  endedAt: string | null;
}

/**
 * The history of one session: its runs in order. `updatedAt` and `expiresAt` are stamped by the
 * store on every write (`expiresAt` = write time + the session TTL: a sliding TTL).
 */
export interface SessionDocument {
  sessionId: string;
  tenantId: string;
  runs: SessionRunRecord[];
  createdAt: string;
  /** When the document was last written. */
  updatedAt: string;
  /** The session is forgotten at this instant unless written again before (reads then find nothing). */
  expiresAt: string;
}

/** What a writer gives: the store adds the tenant, `updatedAt` and `expiresAt`. */
export type SessionWrite = Omit<SessionDocument, 'tenantId' | 'updatedAt' | 'expiresAt'>;

/**
 * Session histories, one document per session, written by compare-and-set. An expired session is
 * absent: `get` returns null and a write at its old revision fails, while a write at revision 0
 * starts it over. KV: `am_session_runs` `<t>.<sessionId>` (the layout the gateway wrote before;
 * the bucket's max age is the TTL); MongoDB: `session_runs` with a TTL index on `expiresAt`.
 */
export interface SessionsRepository {
  /** The live session with its revision, or null (never written, or expired). */
  get(sessionId: string): Promise<Versioned<SessionDocument> | null>;
  /**
   * Writes if the stored revision is still `expectedRevision` (0: only if there is no live session)
   * and restarts the TTL. Returns the stored document with its new revision, or null when another
   * writer got there first (or the session expired since it was read).
   */
  put(session: SessionWrite, expectedRevision: number): Promise<Versioned<SessionDocument> | null>;
}

// ---- read model: run index ------------------------------------------------------------------------

export interface RunListQuery {
  status?: RunStatus;
  agent?: string;
  /** createdAt >= from (ISO-8601) */
  from?: string;
  /** createdAt < to (ISO-8601) */
  to?: string;
  /** 1..1000, default 50 */
  limit?: number;
  /** `nextCursor` of the previous page (the last run id: run ids are ULIDs, so id order is time order). */
  cursor?: string;
}

export interface RunIndexRepository {
  /**
   * Writes the row of a run as folded through journal sequence `throughSeq`, unless the stored row
   * is already at or past it (idempotent, never goes back). True when written.
   */
  upsert(summary: RunSummary, throughSeq: number): Promise<boolean>;
  /** Writes the row whatever is stored (rebuilds). */
  replace(summary: RunSummary, throughSeq: number): Promise<void>;
  get(runId: string): Promise<RunSummary | null>;
  /** Newest first. */
  list(q?: RunListQuery): Promise<Page<RunSummary>>;
}

// ---- read model: usage rollups --------------------------------------------------------------------

export interface UsageRollupsRepository {
  /**
   * Folds metered calls (in AGENTMESH_USAGE stream order) into hourly rollups. Each hour keeps the
   * last stream sequence folded into it, so events at or below it are skipped: applying the same
   * events again counts nothing twice.
   */
  apply(events: ReadonlyArray<{ seq: number; usage: UsageEvent }>): Promise<void>;
  /** Totals over the hours that start in [hour of `from`, `to`), optionally grouped. */
  report(q: { from: string; to: string; groupBy?: UsageGroupBy }): Promise<UsageReport>;
}

// ---- read model: audit ----------------------------------------------------------------------------

export interface AuditEntry {
  /** Unique per tenant; appending the same entry again stores it once. */
  id: string;
  tenantId: string;
  /** ISO-8601 */
  at: string;
  /** An operation id such as `tools.put` or `runs.cancel`. */
  action: string;
  /** `key:<id>`, `platform-admin`, a service name... */
  actor: string;
  outcome: 'allowed' | 'denied' | 'succeeded' | 'failed';
  resource?: string;
  detail?: Record<string, string>;
}

export interface AuditQuery {
  from?: string;
  to?: string;
  action?: string;
  /** 1..1000, default 50 */
  limit?: number;
  cursor?: string;
}

export interface AuditRepository {
  /** True when stored, false when an entry with that id was already there. */
  append(entry: Omit<AuditEntry, 'tenantId'>): Promise<boolean>;
  /** Newest first (by `at`, then id). */
  search(q?: AuditQuery): Promise<Page<AuditEntry>>;
}

// ---- checkpoints ----------------------------------------------------------------------------------

export interface CheckpointsRepository {
  /** The last sequence a projector has applied, 0 if none. */
  get(name: string): Promise<number>;
  /** Moves the checkpoint forward to `seq` (never back). */
  advance(name: string, seq: number): Promise<void>;
  /** Back to 0 (a rebuild starts over). */
  reset(name: string): Promise<void>;
}

/** What the store reads from AppConfig (the optional keys have defaults). */
export interface StoreConfig {
  readonly mongodbUri: string | undefined;
  readonly streamReplicas?: number;
  /** Session history TTL (sliding, restarted by each write); default 24 h. */
  readonly sessionTtlMs?: number;
  /** How long a MongoDB operation waits for a reachable server before failing `unavailable`; default 2 s. */
  readonly mongodbServerSelectionTimeoutMs?: number;
}

export interface StoreOptions {
  /** Clock for TTLs (tests). Default Date.now. */
  now?: () => number;
}

import { Schema, type Connection, type Model } from 'mongoose';
import type { Role, RunError, RunStatus } from '#libs/contracts';
import type { Tally } from '../common.js';

/**
 * MongoDB collections of the repositories. Rules:
 * - the tenant id leads every index (a query can only be served per tenant), except the TTL index
 *   of `session_runs` (MongoDB TTL indexes are single-field) and `checkpoints` (platform-wide);
 * - unique indexes carry the invariants: one tenant per id, immutable versions (tenant, name,
 *   version), one row per run, one audit entry per id, one rollup per hour;
 * - bodies whose keys the platform does not control (agent/tool definitions, budget documents)
 *   are stored as canonical JSON strings, so no `$` or `.` in a user's key can
 *   be read as an operator or a path;
 * - writes use only $set / $setOnInsert / $unset, insert, replace and compare-and-set filters.
 */

const opts = { versionKey: false as const, id: false, strict: 'throw' as const, autoIndex: false, autoCreate: false };

export interface TenantDoc { tenantId: string; name: string; createdAt: string }
export interface ApiKeyDoc { tenantId: string; id: string; name: string; roles: Role[]; hash: string; createdAt: string; revokedAt: string | null }
export interface VersionDoc { tenantId: string; name: string; version: string; digest: string; createdAt: string; body: string }
export interface LatestDoc {
  tenantId: string; name: string; version: string; updatedAt: string; disabled?: boolean;
  /** Tools: why the flag is set (`manual`, `rug_pull`), the version concerned and when (null once enabled). */
  disabledReason?: string | null; disabledVersion?: string | null; disabledAt?: string | null;
}
/** A live credential has `secret` and `metadata` and `revokedAt: null`; a revoked one (tombstone) only `revokedAt` and the times. */
export interface CredentialDoc {
  tenantId: string; name: string;
  secret?: { v: 1; alg: 'A256GCM'; dataKeyId: string; nonce: string; ciphertext: string; tag: string };
  metadata?: { kind: string; allowedTools?: string[]; scopes?: string[]; description?: string };
  createdAt: string; updatedAt: string;
  revokedAt?: string | null;
}
export interface BudgetDocRow { tenantId: string; rev: number; doc: string }
/** One tenant's policy rules (JSON text of TenantRule[]), `rev` for compare-and-set. */
export interface PolicyDocRow { tenantId: string; rev: number; rules: string; updatedAt: string }
export interface SessionRunDoc {
  runId: string; agent: string; agentVersion: string; status: RunStatus; input: string | null; output: string | null;
  error: { code: string; message: string } | null; createdAt: string; endedAt: string | null;
}
/** A session's history; `expiresAt` (last write + TTL) carries the TTL index. */
export interface SessionDoc { tenantId: string; sessionId: string; rev: number; runs: SessionRunDoc[]; createdAt: string; updatedAt: string; expiresAt: Date }
export interface RunDoc {
  tenantId: string; id: string; agent: string; agentVersion: string; sessionId?: string; status: RunStatus; error?: RunError;
  steps: number; createdAt: string; updatedAt: string; throughSeq: number;
}
export interface GroupTally extends Tally { key: string }
export interface RollupDoc { tenantId: string; hour: string; rev: number; throughSeq: number; total: Tally; agent: GroupTally[]; model: GroupTally[]; tool: GroupTally[] }
export interface AuditDoc {
  tenantId: string; id: string; at: string; action: string; actor: string; outcome: string; resource?: string; detail?: string;
}
export interface CheckpointDoc { _id: string; seq: number }

const tally = { m: { type: Number, required: true }, calls: { type: Number, required: true }, in: { type: Number, required: true }, out: { type: Number, required: true } };
const groupTally = new Schema<GroupTally>({ key: { type: String, required: true }, ...tally }, { _id: false, versionKey: false, strict: 'throw' });

export const tenantSchema = new Schema<TenantDoc>({
  tenantId: { type: String, required: true }, name: { type: String, required: true }, createdAt: { type: String, required: true },
}, opts);
tenantSchema.index({ tenantId: 1 }, { unique: true });

export const apiKeySchema = new Schema<ApiKeyDoc>({
  tenantId: { type: String, required: true }, id: { type: String, required: true }, name: { type: String, default: '' },
  roles: { type: [String], required: true }, hash: { type: String, required: true }, createdAt: { type: String, required: true },
  revokedAt: { type: String, default: null },
}, opts);
apiKeySchema.index({ tenantId: 1, id: 1 }, { unique: true });

const versionSchema = (): Schema<VersionDoc> => {
  const s = new Schema<VersionDoc>({
    tenantId: { type: String, required: true }, name: { type: String, required: true }, version: { type: String, required: true },
    digest: { type: String, required: true }, createdAt: { type: String, required: true }, body: { type: String, required: true },
  }, opts);
  // immutable versions: a second body under the same name+version cannot be inserted
  s.index({ tenantId: 1, name: 1, version: 1 }, { unique: true });
  s.index({ tenantId: 1, name: 1, createdAt: 1 });
  return s;
};
const latestSchema = (): Schema<LatestDoc> => {
  const s = new Schema<LatestDoc>({
    tenantId: { type: String, required: true }, name: { type: String, required: true }, version: { type: String, required: true },
    updatedAt: { type: String, required: true }, disabled: { type: Boolean },
    disabledReason: { type: String }, disabledVersion: { type: String }, disabledAt: { type: String },
  }, opts);
  s.index({ tenantId: 1, name: 1 }, { unique: true });
  return s;
};
export const agentVersionSchema = versionSchema();
export const agentLatestSchema = latestSchema();
export const toolVersionSchema = versionSchema();
export const toolLatestSchema = latestSchema();

export const credentialSchema = new Schema<CredentialDoc>({
  tenantId: { type: String, required: true },
  name: { type: String, required: true },
  // absent on a revoked credential's tombstone (the ciphertext is removed at revocation)
  secret: {
    v: { type: Number }, alg: { type: String }, dataKeyId: { type: String },
    nonce: { type: String }, ciphertext: { type: String }, tag: { type: String },
  },
  metadata: {
    kind: { type: String }, allowedTools: { type: [String], default: undefined }, scopes: { type: [String], default: undefined },
    description: { type: String },
  },
  createdAt: { type: String, required: true },
  updatedAt: { type: String, required: true },
  /** null while live; the revocation time on the tombstone. */
  revokedAt: { type: String, default: null },
}, opts);
credentialSchema.index({ tenantId: 1, name: 1 }, { unique: true });

export const budgetSchema = new Schema<BudgetDocRow>({
  tenantId: { type: String, required: true }, rev: { type: Number, required: true }, doc: { type: String, required: true },
}, opts);
budgetSchema.index({ tenantId: 1 }, { unique: true });

export const policySchema = new Schema<PolicyDocRow>({
  tenantId: { type: String, required: true }, rev: { type: Number, required: true }, rules: { type: String, required: true },
  updatedAt: { type: String, required: true },
}, opts);
policySchema.index({ tenantId: 1 }, { unique: true });

const sessionRunError = new Schema<{ code: string; message: string }>({
  code: { type: String, required: true }, message: { type: String, default: '' },
}, { _id: false, versionKey: false, strict: 'throw' });
const sessionRun = new Schema<SessionRunDoc>({
  runId: { type: String, required: true }, agent: { type: String, required: true }, agentVersion: { type: String, required: true },
  status: { type: String, required: true }, input: { type: String, default: null }, output: { type: String, default: null },
  error: { type: sessionRunError, default: null }, createdAt: { type: String, required: true }, endedAt: { type: String, default: null },
}, { _id: false, versionKey: false, strict: 'throw' });
export const sessionSchema = new Schema<SessionDoc>({
  tenantId: { type: String, required: true }, sessionId: { type: String, required: true }, rev: { type: Number, required: true },
  runs: { type: [sessionRun], default: [] }, createdAt: { type: String, required: true }, updatedAt: { type: String, required: true },
  expiresAt: { type: Date, required: true },
}, opts);
sessionSchema.index({ tenantId: 1, sessionId: 1 }, { unique: true });
// MongoDB removes a session once expiresAt (its last write + AGENTMESH_SESSION_TTL) has passed; the
// TTL monitor runs about once a minute, and reads ignore expired sessions, so expiry is exact for callers.
// TTL indexes are single-field, so this one cannot lead with the tenant id.
sessionSchema.index({ expiresAt: 1 }, { expireAfterSeconds: 0 });

export const runSchema = new Schema<RunDoc>({
  tenantId: { type: String, required: true }, id: { type: String, required: true }, agent: { type: String, required: true },
  agentVersion: { type: String, required: true }, sessionId: { type: String }, status: { type: String, required: true },
  error: { type: new Schema<RunError>({ code: { type: String, required: true }, message: { type: String, required: true } }, { _id: false, versionKey: false, strict: 'throw' }) },
  steps: { type: Number, required: true }, createdAt: { type: String, required: true }, updatedAt: { type: String, required: true },
  throughSeq: { type: Number, required: true },
}, opts);
runSchema.index({ tenantId: 1, id: -1 }, { unique: true });
runSchema.index({ tenantId: 1, status: 1, id: -1 });
runSchema.index({ tenantId: 1, agent: 1, id: -1 });
runSchema.index({ tenantId: 1, createdAt: -1 });

export const rollupSchema = new Schema<RollupDoc>({
  tenantId: { type: String, required: true }, hour: { type: String, required: true }, rev: { type: Number, required: true },
  throughSeq: { type: Number, required: true }, total: { type: new Schema<Tally>(tally, { _id: false, versionKey: false }), required: true },
  agent: { type: [groupTally], default: [] }, model: { type: [groupTally], default: [] }, tool: { type: [groupTally], default: [] },
}, opts);
rollupSchema.index({ tenantId: 1, hour: 1 }, { unique: true });

export const auditSchema = new Schema<AuditDoc>({
  tenantId: { type: String, required: true }, id: { type: String, required: true }, at: { type: String, required: true },
  action: { type: String, required: true }, actor: { type: String, required: true }, outcome: { type: String, required: true },
  resource: { type: String }, detail: { type: String },
}, opts);
auditSchema.index({ tenantId: 1, id: 1 }, { unique: true });
auditSchema.index({ tenantId: 1, at: -1, id: -1 });
auditSchema.index({ tenantId: 1, action: 1, at: -1, id: -1 });

export const checkpointSchema = new Schema<CheckpointDoc>({ _id: { type: String, required: true }, seq: { type: Number, required: true } }, opts);

/** Every collection: model name, schema, collection name. */
export const COLLECTIONS = {
  tenants: { schema: tenantSchema, collection: 'tenants' },
  apiKeys: { schema: apiKeySchema, collection: 'api_keys' },
  agentVersions: { schema: agentVersionSchema, collection: 'agent_versions' },
  agentLatest: { schema: agentLatestSchema, collection: 'agent_latest' },
  toolVersions: { schema: toolVersionSchema, collection: 'tool_versions' },
  toolLatest: { schema: toolLatestSchema, collection: 'tool_latest' },
  credentials: { schema: credentialSchema, collection: 'credentials' },
  budgets: { schema: budgetSchema, collection: 'budgets' },
  policies: { schema: policySchema, collection: 'policies' },
  sessions: { schema: sessionSchema, collection: 'session_runs' },
  runs: { schema: runSchema, collection: 'run_index' },
  usage: { schema: rollupSchema, collection: 'usage_rollups' },
  audit: { schema: auditSchema, collection: 'audit' },
  checkpoints: { schema: checkpointSchema, collection: 'checkpoints' },
} as const;

export interface Models {
  tenants: Model<TenantDoc>;
  apiKeys: Model<ApiKeyDoc>;
  agentVersions: Model<VersionDoc>;
  agentLatest: Model<LatestDoc>;
  toolVersions: Model<VersionDoc>;
  toolLatest: Model<LatestDoc>;
  credentials: Model<CredentialDoc>;
  budgets: Model<BudgetDocRow>;
  policies: Model<PolicyDocRow>;
  sessions: Model<SessionDoc>;
  runs: Model<RunDoc>;
  usage: Model<RollupDoc>;
  audit: Model<AuditDoc>;
  checkpoints: Model<CheckpointDoc>;
}

/** Binds the schemas to a connection (models are per connection, so several stores can coexist). */
export function modelsOf(conn: Connection): Models {
  const m = {} as Record<keyof Models, unknown>;
  for (const [name, c] of Object.entries(COLLECTIONS) as Array<[keyof Models, (typeof COLLECTIONS)[keyof Models]]>) {
    m[name] = conn.model(name, c.schema as Schema, c.collection);
  }
  return m as Models;
}

export { KvDocuments, keyToken } from './kv-documents.js';
export type {
  Repositories, TenantRepositories, Versioned, Page, TenantRecord, TenantsRepository, ApiKeyRecord, ApiKeysRepository,
  VersionedCatalog, AgentsRepository, ToolCatalogRepository, ToolDisableFlag, EncryptedSecretFields, CredentialMetadata, CredentialRecord,
  CredentialLookup, CredentialsRepository, BudgetDocument, BudgetsRepository, SessionRunRecord, SessionDocument, SessionWrite, SessionsRepository, RunListQuery,
  RunIndexRepository, UsageRollupsRepository, AuditEntry, AuditQuery, AuditRepository, CheckpointsRepository, StoreConfig, StoreOptions,
} from './repositories.js';
export { createRepositories } from './create-repositories.js';
export { createKvRepositories, STORE_BUCKETS } from './kv/kv-repositories.js';
export { createMongoRepositories, isUnreachable as isMongoUnreachable } from './mongo/mongo-repositories.js';
export { DEFAULT_SESSION_TTL_MS, hourKey, type HourRollup, type Tally } from './common.js';
export { followLive } from './follow-live.js';
export { RunIndexProjector, RUN_INDEX_CHECKPOINT, type RunIndexProjectorOptions, type ProjectionReport } from './run-index-projector.js';
export { StoreModule, STORE } from './store.module.js';

/**
 * Identifier grammars. Tenant and run ids become subject tokens and KV keys, so they are
 * restricted to characters that are safe in both (no '.', '*', '>', whitespace).
 */
export const TENANT_ID = /^[a-z0-9][a-z0-9-]{1,62}$/;
export const RUN_ID = /^run_[0-9A-HJKMNP-TV-Z]{26}$/;
/** Tool, agent and credential names. */
export const RESOURCE_NAME = /^[a-zA-Z][a-zA-Z0-9_-]{0,63}$/;
/** Semantic-ish version strings for tools and agents ("1", "1.2.0", "2024-05-01"). */
export const VERSION = /^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$/;
export const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export const isTenantId = (s: unknown): s is string => typeof s === 'string' && TENANT_ID.test(s);
export const isRunId = (s: unknown): s is string => typeof s === 'string' && RUN_ID.test(s);
export const isResourceName = (s: unknown): s is string => typeof s === 'string' && RESOURCE_NAME.test(s);

/** A run within its tenant: the unit of the journal, fencing and caching. */
export interface RunKey {
  readonly tenantId: string;
  readonly runId: string;
}
export const runKeyString = (k: RunKey): string => `${k.tenantId}.${k.runId}`;

/**
 * The idempotency key of one side-effecting call: stable for the same run, step and call across
 * retries, redeliveries and recovery.
 */
export const callKey = (runId: string, step: number, call = 0): string => `${runId}:${step}:${call}`;

/** Approval ids: `apr_` + 32 hex digits, derived by the engine from the call key and the args hash. */
export const APPROVAL_ID = /^apr_[0-9a-f]{32}$/;
export const isApprovalId = (s: unknown): s is string => typeof s === 'string' && APPROVAL_ID.test(s);

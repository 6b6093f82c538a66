import type { PinnedTool, StoredResult, ToolRecord, ToolRegistration } from './domain.js';
import type { WireError } from './errors.js';
import type { CredentialInjection, CredentialInput, CredentialKind, CredentialView, KeyringStatus, RotationReport } from './credentials.js';
import type {
  BudgetSettings, BudgetView, ReserveRequest, ReserveResult, SettleRequest, SettleResult, UsageGroupBy, UsageReport,
} from './budget.js';
import type { InferenceChatRequest, InferenceChatResponse, InferenceReleaseRequest } from './inference.js';

/** Synchronous questions between services (core NATS request/reply), by name. */
export interface RpcMap {
  'tools.put': { req: { tenantId: string; tool: ToolRegistration }; res: { tool: ToolRecord; created: boolean } };
  'tools.list': { req: { tenantId: string }; res: { tools: Array<ToolRecord & { disabled: boolean; disabledReason?: string }> } };
  'tools.get': { req: { tenantId: string; name: string }; res: { versions: ToolRecord[]; disabled: boolean; disabledReason?: string } };
  'tools.setDisabled': { req: { tenantId: string; name: string; disabled: boolean }; res: { name: string; disabled: boolean } };
  /** Pins each `name` or `name@version` reference to a concrete version. */
  'tools.resolve': { req: { tenantId: string; refs: string[] }; res: { tools: Record<string, PinnedTool> } };
  /**
   * Reads back an offloaded tool result (a `resultRef`) of the tenant. Without `offset` the whole
   * result comes back as JSON in `result` (payload_too_large when it does not fit one reply);
   * with `offset` (and optional `length`) a base64 chunk of its JSON text.
   */
  'results.get': { req: { tenantId: string; ref: string; offset?: number; length?: number }; res: StoredResult };
  /** Holds the worst-case cost of one call against the tenant, agent and run budgets; idempotent on the call key. */
  'budget.reserve': { req: ReserveRequest; res: ReserveResult };
  /** Charges the actual cost of a reserved call and releases the rest; charged once per call key. */
  'budget.settle': { req: SettleRequest; res: SettleResult };
  'budget.get': { req: { tenantId: string }; res: BudgetView };
  'budget.put': { req: { tenantId: string; budget: BudgetSettings }; res: BudgetView };
  /** Usage over [from, to) from the hourly rollups, optionally grouped. */
  'usage.get': { req: { tenantId: string; from: string; to: string; groupBy?: UsageGroupBy }; res: UsageReport };
  /** Stores (creates or replaces) a credential, encrypted. The request holds secret material; the answer never does. */
  'credentials.put': { req: { tenantId: string; name: string; credential: CredentialInput }; res: { credential: CredentialView; created: boolean } };
  /** The tenant's credentials, metadata only, by name. */
  'credentials.list': { req: { tenantId: string }; res: { credentials: CredentialView[] } };
  /** Revokes (deletes) a credential: the next call of a tool that uses it fails closed. */
  'credentials.revoke': { req: { tenantId: string; name: string }; res: { name: string; revoked: true } };
  /**
   * orchestrator → broker: a delegation for one call of one tool version in one run, with the
   * scopes the tool asks for that the credential allows. Refusals are `permission_denied` /
   * `not_found` with `reason` a CredentialFailure.
   */
  'credentials.mint': {
    req: {
      tenantId: string; runId: string; step: number; callKey: string;
      tool: { name: string; version: string }; credential: { name: string; scopes: string[] }; ttlSeconds?: number;
    };
    res: { delegation: string; expiresAt: string; scopes: string[] };
  };
  /**
   * tool-runner → broker: checks a delegation (audience, expiry, single use, tenant and tool,
   * credential allowed and not revoked) and answers the header to send. Any failure refuses
   * (`permission_denied` / `not_found`, `reason` a CredentialFailure).
   */
  'credentials.redeem': {
    req: { tenantId: string; tool: { name: string; version: string }; credentialName: string; delegation: string };
    res: { credential: string; kind: CredentialKind; scopes: string[]; inject: CredentialInjection };
  };
  /** Master-key state of the keyring (operators, scripts/rotate-master-key.mjs). */
  'credentials.keys': { req: Record<string, never>; res: KeyringStatus };
  /**
   * Re-wraps every tenant data key that is not under the active master key with the active key
   * (after re-reading the master keys when they live in the data folder). Idempotent, online.
   */
  'credentials.rotate': { req: { reload?: boolean }; res: RotationReport };
  /** One LLM call through the inference-router (sticky replica, model routing, usage settled); see inference.ts. */
  'inference.chat': { req: InferenceChatRequest; res: InferenceChatResponse };
  /** Releases a finished session's replica pins. */
  'inference.release': { req: InferenceReleaseRequest; res: { released: number } };
}

export type RpcName = keyof RpcMap;
export type RpcReply<N extends RpcName> = { ok: true; value: RpcMap[N]['res'] } | { ok: false; error: WireError };

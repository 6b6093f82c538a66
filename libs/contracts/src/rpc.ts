import type { PinnedTool, StoredResult, ToolRecord, ToolRegistration } from './domain.js';
import type { WireError } from './errors.js';
import type {
  BudgetSettings, BudgetView, ReserveRequest, ReserveResult, SettleRequest, SettleResult, UsageGroupBy, UsageReport,
} from './budget.js';

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
}

export type RpcName = keyof RpcMap;
export type RpcReply<N extends RpcName> = { ok: true; value: RpcMap[N]['res'] } | { ok: false; error: WireError };

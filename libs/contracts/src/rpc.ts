import type { PinnedTool, ToolRecord, ToolRegistration } from './domain.js';
import type { WireError } from './errors.js';

/** Synchronous questions between services (core NATS request/reply), by name. */
export interface RpcMap {
  'tools.put': { req: { tenantId: string; tool: ToolRegistration }; res: { tool: ToolRecord; created: boolean } };
  'tools.list': { req: { tenantId: string }; res: { tools: Array<ToolRecord & { disabled: boolean }> } };
  'tools.get': { req: { tenantId: string; name: string }; res: { versions: ToolRecord[]; disabled: boolean } };
  'tools.setDisabled': { req: { tenantId: string; name: string; disabled: boolean }; res: { name: string; disabled: boolean } };
  /** Pins each `name` or `name@version` reference to a concrete version. */
  'tools.resolve': { req: { tenantId: string; refs: string[] }; res: { tools: Record<string, PinnedTool> } };
}

export type RpcName = keyof RpcMap;
export type RpcReply<N extends RpcName> = { ok: true; value: RpcMap[N]['res'] } | { ok: false; error: WireError };

import type { CommandName } from './commands.js';
import type { RpcName } from './rpc.js';
import type { RunKey } from './ids.js';

/**
 * Every stream, subject, consumer and bucket name lives here and nowhere else.
 *
 * Journal: `run.<tenant>.<runId>`, one subject per run, so `nats stream view AGENTMESH_JOURNAL
 * --subject 'run.acme.>'` shows one tenant and replaying a run is one filtered consumer.
 * Commands: `cmd.v1.<service>.<tenant>.<runId>[.<kind>]` on a work-queue stream.
 * RPC: `svc.v1.<service>.<op>` on core NATS with a queue group per service.
 */
export const STREAMS = {
  journal: { name: 'AGENTMESH_JOURNAL', subjects: ['run.>'] },
  commands: { name: 'AGENTMESH_CMD', subjects: ['cmd.>'] },
  /** Metered calls for billing: `usage.<tenant>`, one message per settled call (msg id = call key). */
  usage: { name: 'AGENTMESH_USAGE', subjects: ['usage.>'] },
} as const;

export const CONSUMERS = {
  orchestrator: { stream: STREAMS.commands.name, durable: 'orchestrator', filter: 'cmd.v1.orch.>' },
  toolRunner: { stream: STREAMS.commands.name, durable: 'tool-runner', filter: 'cmd.v1.tool.>' },
} as const;

export const BUCKETS = {
  tenants: 'am_tenants',
  apiKeys: 'am_apikeys',
  agents: 'am_agents',
  tools: 'am_tools',
  runIndex: 'am_run_index',
  admissions: 'am_admissions',
  snapshots: 'am_snapshots',
  toolCalls: 'am_tool_calls',
  /** `<tenant>.budget` (limits, spent, holds) and `<tenant>.breaker` (the circuit breaker flag). */
  budgets: 'am_budgets',
  /** `<tenant>.<callKey>`: what a settled priced call was charged (answers replayed settlements). */
  budgetCalls: 'am_budget_calls',
  /** `<tenant>.h.<YYYYMMDDHH>`: hourly usage rollups. */
  usageRollups: 'am_usage_rollups',
  /**
   * `<tenant>.<sessionId>.<key>`: per-session tool memory (builtins memory_get / memory_put).
   * The bucket's max_age is the session TTL: nats-server 2.9 has no per-key TTL, so every entry
   * expires that long after its own last write (bucket-wide max_age, see provision.ts).
   */
  sessionMemory: 'am_session_memory',
} as const;

/** JetStream object stores (not KV buckets). */
export const OBJECT_STORES = {
  /** `<tenant>/<callKey>`: tool results over 64 KiB; the journal keeps a preview and this ref. */
  results: 'am_results',
} as const;

export const journalSubject = (k: RunKey): string => `run.${k.tenantId}.${k.runId}`;
export const journalTenantFilter = (tenantId: string): string => `run.${tenantId}.>`;
export const usageSubject = (tenantId: string): string => `usage.${tenantId}`;
/** KV key filter of every tenant's circuit breaker flag in BUCKETS.budgets. */
export const BREAKER_KEYS = '*.breaker';

const COMMAND_SUBJECTS: Record<CommandName, (k: RunKey) => string> = {
  'run.start': (k) => `cmd.v1.orch.${k.tenantId}.${k.runId}.start`,
  'run.cancel': (k) => `cmd.v1.orch.${k.tenantId}.${k.runId}.cancel`,
  'tool.result': (k) => `cmd.v1.orch.${k.tenantId}.${k.runId}.toolresult`,
  'tool.execute': (k) => `cmd.v1.tool.${k.tenantId}.${k.runId}`,
};
export const commandSubject = (name: CommandName, k: RunKey): string => COMMAND_SUBJECTS[name](k);

const RPC_SERVICE: Record<RpcName, string> = {
  'tools.put': 'tool-runner',
  'tools.list': 'tool-runner',
  'tools.get': 'tool-runner',
  'tools.setDisabled': 'tool-runner',
  'tools.resolve': 'tool-runner',
  'results.get': 'tool-runner',
  'budget.reserve': 'cost-governor',
  'budget.settle': 'cost-governor',
  'budget.get': 'cost-governor',
  'budget.put': 'cost-governor',
  'usage.get': 'cost-governor',
};
export const rpcSubject = (name: RpcName): string => `svc.v1.${RPC_SERVICE[name]}.${name}`;
export const rpcQueueGroup = (name: RpcName): string => RPC_SERVICE[name];

/** Message headers. */
export const HEADERS = {
  type: 'am-type',
  schema: 'am-schema',
  tenant: 'am-tenant',
  traceparent: 'traceparent',
  session: 'am-session',
} as const;

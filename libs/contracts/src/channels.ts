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
  /**
   * Durable timers (work queue): `timer.v1.orch.<tenant>.<runId>.approval`, one message per pending
   * approval (msg id `timer:<approvalId>`). nats-server 2.9 has no scheduled messages: the consumer
   * naks a timer with the remaining delay until it is due (see CONSUMERS.approvalTimers).
   */
  timers: { name: 'AGENTMESH_TIMERS', subjects: ['timer.>'] },
  /**
   * Security audit trail: `audit.<tenant>`, one hash-chained record per security-relevant action,
   * appended with expected-last-subject-sequence so a tenant's chain never forks. Append-only:
   * the stream denies message deletes and purges.
   */
  audit: { name: 'AGENTMESH_AUDIT', subjects: ['audit.>'] },
} as const;

export const CONSUMERS = {
  orchestrator: { stream: STREAMS.commands.name, durable: 'orchestrator', filter: 'cmd.v1.orch.>' },
  toolRunner: { stream: STREAMS.commands.name, durable: 'tool-runner', filter: 'cmd.v1.tool.>' },
  /**
   * The orchestrator's approval timers. Unlimited deliveries (a timer is nak'd until due) and a
   * large ack-pending limit: every waiting approval holds one unacknowledged message.
   */
  approvalTimers: { stream: STREAMS.timers.name, durable: 'orchestrator-timers', filter: 'timer.v1.orch.>', maxAckPending: 100_000 },
} as const;

/**
 * Durable consumers of earlier versions that provisioning deletes when it finds them (nothing reads
 * them any more; left in place they would only grow their pending counts). `gateway-run-ends`
 * watched every journal event for terminal ones; the orchestrator now frees the run's slot itself.
 */
export const RETIRED_CONSUMERS = [{ stream: STREAMS.journal.name, durable: 'gateway-run-ends' }] as const;

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
  /** `<tenant>.<name>`: credentials (metadata and the secret encrypted under the tenant's data key). */
  credentials: 'am_credentials',
  /** `<tenant>`: the tenant's data key, wrapped by a master key (credential-broker). */
  keyring: 'am_keyring',
  /**
   * `<jti>`: redeemed delegation ids (single use). Its max_age (DELEGATION_REPLAY_TTL_MS, see
   * provision.ts) is longer than any delegation lives, so an id is remembered while it could be presented.
   */
  delegationReplay: 'am_delegation_replay',
  /** `<tenant>.rules`: a tenant's own policy rules (JSON); the KV revision is the compare-and-set token. */
  policy: 'am_policy',
  /** `<tenant>.active`: the tenant's admitted, not yet ended runs (the concurrent-run cap). */
  activeRuns: 'am_active_runs',
  /**
   * `<tenant>.<sessionId>`: the runs of one conversation, in order (libs/store `sessions` on the KV
   * backend). Like sessionMemory its max_age is the session TTL (bucket-wide: nats-server 2.9 has no
   * per-key TTL).
   */
  sessionRuns: 'am_session_runs',
  /** `<tenant>.<approvalId>`: approvals read model (ApprovalRecord), written by the orchestrator from the journal. */
  approvals: 'am_approvals',
  /**
   * `<tenant>.<sessionId>.<model pool>`: the inference-router's session → replica pins (persisted
   * so a router restart keeps them; removed when released or idle past AGENTMESH_ROUTER_PIN_GC).
   */
  assignments: 'am_assignments',
  /** `<replicaId>`: inference replicas added or changed through the router's admin API. */
  replicas: 'am_replicas',
  /**
   * `<tenant>.<sessionId>`: the orchestrator's record of a session for planners (PlannerSessionDoc):
   * completed turns and planner memory. Its max_age is the session TTL, like the other session buckets.
   */
  plannerSessions: 'am_planner_sessions',
} as const;

/** Buckets whose max_age is the session TTL (AGENTMESH_SESSION_TTL); see provision.ts. */
export const SESSION_TTL_BUCKETS: readonly string[] = [BUCKETS.sessionMemory, BUCKETS.sessionRuns, BUCKETS.plannerSessions];

/** JetStream object stores (not KV buckets). */
export const OBJECT_STORES = {
  /** `<tenant>/<callKey>`: tool results over 64 KiB; the journal keeps a preview and this ref. */
  results: 'am_results',
} as const;

export const journalSubject = (k: RunKey): string => `run.${k.tenantId}.${k.runId}`;
export const journalTenantFilter = (tenantId: string): string => `run.${tenantId}.>`;
export const usageSubject = (tenantId: string): string => `usage.${tenantId}`;
/** Core NATS (not JetStream): token deltas of a run's streamed `inference.chat` calls. */
export const inferenceDeltaSubject = (tenantId: string, runId: string): string => `inference.v1.delta.${tenantId}.${runId}`;
/**
 * Core NATS request/reply (planner.v1): where the orchestrator asks an external planner of a
 * tenant for its next decision. Planner names may hold dots (extra subject tokens after the tenant).
 */
export const plannerSubject = (tenantId: string, planner: string): string => `planner.v1.${tenantId}.${planner}`;
/** What a planner instance subscribes to: every tenant (`*`) or one. */
export const plannerSubscription = (planner: string, tenantId = '*'): string => `planner.v1.${tenantId}.${planner}`;
/** The queue group of a planner's instances: they share its requests. */
export const plannerQueueGroup = (planner: string): string => `planner.${planner}`;
/** One tenant's audit chain in STREAMS.audit. */
export const auditSubject = (tenantId: string): string => `audit.${tenantId}`;
/**
 * Core NATS (not JetStream): a gateway changed a tenant's policy; every other instance reloads.
 * Payload `{origin, tenant?}` (libs/policy NatsPolicyWatcher).
 */
export const POLICY_CHANGED_SUBJECT = 'svc.v1.policy.changed';
/** KV key filter of every tenant's circuit breaker flag in BUCKETS.budgets. */
export const BREAKER_KEYS = '*.breaker';

const COMMAND_SUBJECTS: Record<CommandName, (k: RunKey) => string> = {
  'run.start': (k) => `cmd.v1.orch.${k.tenantId}.${k.runId}.start`,
  'run.cancel': (k) => `cmd.v1.orch.${k.tenantId}.${k.runId}.cancel`,
  'tool.result': (k) => `cmd.v1.orch.${k.tenantId}.${k.runId}.toolresult`,
  'tool.execute': (k) => `cmd.v1.tool.${k.tenantId}.${k.runId}`,
  'approval.decide': (k) => `cmd.v1.orch.${k.tenantId}.${k.runId}.approval`,
  'approval.timeout': (k) => `timer.v1.orch.${k.tenantId}.${k.runId}.approval`,
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
  'credentials.put': 'credential-broker',
  'credentials.list': 'credential-broker',
  'credentials.revoke': 'credential-broker',
  'credentials.mint': 'credential-broker',
  'credentials.redeem': 'credential-broker',
  'credentials.keys': 'credential-broker',
  'credentials.rotate': 'credential-broker',
  'inference.chat': 'inference-router',
  'inference.release': 'inference-router',
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

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
} as const;

export const journalSubject = (k: RunKey): string => `run.${k.tenantId}.${k.runId}`;
export const journalTenantFilter = (tenantId: string): string => `run.${tenantId}.>`;

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

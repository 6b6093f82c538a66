import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  agentBodySchema, AgentmeshError, cancelRunBodySchema, createTenantBodySchema, decideApprovalBodySchema, invalid, isResourceName,
  isRunId, issueKeyBodySchema, notFound, SchemaValidator, startRunBodySchema, toolBodySchema, unavailable, VERSION,
  type AgentSpec, type Role, type ToolRegistration,
} from '#libs/contracts';
import { RpcClient } from '#libs/messaging';
import type {
  PbCancelRunRequest, PbCancelRunResponse, PbCreateTenantRequest, PbCreateTenantResponse, PbGetAgentRequest, PbGetAgentResponse,
  PbGetRunResponse, PbGetToolResponse, PbIssueApiKeyRequest, PbIssueApiKeyResponse, PbListAgentsResponse, PbListRunsRequest,
  PbListRunsResponse, PbListToolsResponse, PbPutAgentRequest, PbPutAgentResponse, PbPutToolRequest, PbPutToolResponse,
  PbRevokeApiKeyRequest, PbRevokeApiKeyResponse, PbRunEvent, PbRunRequest, PbStartRunRequest, PbStartRunResponse,
  PbTenantRequest, PbToolNameRequest, PbToolSwitchResponse, PbWatchRunRequest,
  PbDecideApprovalRequest, PbDecideApprovalResponse, PbListApprovalsRequest, PbListApprovalsResponse,
} from '#libs/sdk';
import type { AgentsService } from '../agents/agents.service.js';
import { auditService } from '../audit/audit.grpc.js';
import type { AuditSearch } from '../audit/audit-search.service.js';
import { AuditLog } from '../audit/audit.service.js';
import { auditGrpcCalls } from '../audit/grpc-audit.js';
import { BudgetsApi } from '../budgets/budgets.api.js';
import { budgetsService } from '../budgets/budgets.grpc.js';
import { credentialsService } from '../credentials/credentials.grpc.js';
import type { GatewayPolicy } from '../policy/gateway-policy.js';
import { TenantPolicyApi } from '../policy/policy.api.js';
import { policiesService } from '../policy/policy.grpc.js';
import { sessionsService } from '../tenants/sessions.grpc.js';
import type { SessionsService } from '../tenants/sessions.service.js';
import { approvalToPb } from '../approvals/approval-pb.js';
import { approvalStatusParam, ApprovalsService, type DecideApprovalBody } from '../approvals/approvals.service.js';
import type { RunsService, StartRunBody } from '../runs/runs.service.js';
import type { TenantsService } from '../tenants/keys.service.js';
import { required, serverStream, unary, type CallContext, type CallDeps } from './call.js';
import {
  agentBodyFromPb, agentToPb, apiKeyToPb, compact, eventToPb, given, isTerminalStatus, restEnum, rolesFromPb, runSummaryToPb,
  runToPb, startRunBodyFromPb, tenantToPb, toolBodyFromPb, toolVersionToPb,
} from './mapping.js';

const v = new SchemaValidator();
const DEFAULT_PAGE = 20;
const MAX_PAGE = 100;
const PKG = 'agentmesh.v1';

export interface HandlerServices {
  tenants: TenantsService;
  agents: AgentsService;
  runs: RunsService;
  nc: NatsConnection;
  /** The gateway's audit trail; one is opened on `nc` when not given. */
  audit?: AuditLog;
  /** Audit search (ListAudit with filters); without it a filtered ListAudit answers UNAVAILABLE. */
  auditSearch?: AuditSearch;
  /** The REST ApprovalsService; one is made from `nc` and the call deps when not given. */
  approvals?: ApprovalsService;
  /** The gateway's policy (rules in KV), which the Policies service reads and replaces. */
  policy: GatewayPolicy;
  /** Session histories (Sessions service). */
  sessions: SessionsService;
  /** How long a tenant's budget state is trusted for admission (config.budgetStateCacheMs). */
  budgetStateCacheMs: number;
}

/** A resource name from a request: required, and a malformed one is NOT_FOUND (as a malformed REST path segment). */
function resourceName(name: string | undefined, field: string, what: string): string {
  const n = required(name, field);
  if (!isResourceName(n)) throw notFound(`${what} ${n}`);
  return n;
}

/**
 * The gRPC services of `agentmesh.v1`: each method is its REST route's twin, calling the same
 * service with the same operation id (policy), the same JSON Schema and the same errors.
 */
export async function createServiceImplementations(s: HandlerServices, deps: CallDeps): Promise<Record<string, UntypedServiceImplementation>> {
  const rpc = new RpcClient(s.nc);
  const m = (service: string, method: string) => `/${PKG}.${service}/${method}`;

  const Tenants = {
    CreateTenant: unary(m('Tenants', 'CreateTenant'), deps, async (req: PbCreateTenantRequest, ctx: CallContext): Promise<PbCreateTenantResponse> => {
      const body = compact({ id: given(req.id), name: given(req.name) });
      await ctx.authorize('tenants.create', null, body);
      const b = v.assert<{ id: string; name?: string }>('create-tenant', createTenantBodySchema, body);
      ctx.checkpoint();
      return { tenant: tenantToPb(await s.tenants.createTenant(b.id, b.name)) };
    }),
    IssueApiKey: unary(m('Tenants', 'IssueApiKey'), deps, async (req: PbIssueApiKeyRequest, ctx: CallContext): Promise<PbIssueApiKeyResponse> => {
      const body = compact({ name: given(req.name), roles: rolesFromPb(req.roles) });
      await ctx.authorize('apikeys.issue', req.tenant, body);
      const b = v.assert<{ roles: Role[]; name?: string }>('issue-key', issueKeyBodySchema, body);
      ctx.checkpoint();
      const { record, key } = await s.tenants.issueKey(req.tenant!, b.roles, b.name);
      return { api_key: apiKeyToPb(record), key };
    }),
    RevokeApiKey: unary(m('Tenants', 'RevokeApiKey'), deps, async (req: PbRevokeApiKeyRequest, ctx: CallContext): Promise<PbRevokeApiKeyResponse> => {
      await ctx.authorize('apikeys.revoke', req.tenant, undefined);
      const id = required(req.key_id, 'key_id');
      ctx.checkpoint();
      await s.tenants.revokeKey(req.tenant!, id);
      const rec = await s.tenants.getKey(req.tenant!, id); // apiKeyToPb never passes the hash on
      if (!rec) throw notFound(`api key ${id}`);
      return { api_key: apiKeyToPb(rec) };
    }),
  };

  const Tools = {
    PutTool: unary(m('Tools', 'PutTool'), deps, async (req: PbPutToolRequest, ctx: CallContext): Promise<PbPutToolResponse> => {
      const body = toolBodyFromPb(req);
      await ctx.authorize('tools.put', req.tenant, body);
      const name = resourceName(req.name, 'name', 'tool');
      v.assert('tool-body', toolBodySchema, body, 'tool definition');
      ctx.checkpoint();
      const { tool, created } = await rpc.call('tools.put', { tenantId: req.tenant!, tool: { ...(body as Omit<ToolRegistration, 'name'>), name } });
      return { tool: toolVersionToPb(tool), created };
    }),
    ListTools: unary(m('Tools', 'ListTools'), deps, async (req: PbTenantRequest, ctx: CallContext): Promise<PbListToolsResponse> => {
      await ctx.authorize('tools.list', req.tenant, undefined);
      const { tools } = await rpc.call('tools.list', { tenantId: req.tenant! });
      return { tools: tools.map((t) => ({ name: t.name, disabled: t.disabled, latest: toolVersionToPb(t) })) };
    }),
    GetTool: unary(m('Tools', 'GetTool'), deps, async (req: PbToolNameRequest, ctx: CallContext): Promise<PbGetToolResponse> => {
      await ctx.authorize('tools.get', req.tenant, undefined);
      const name = resourceName(req.name, 'name', 'tool');
      const r = await rpc.call('tools.get', { tenantId: req.tenant!, name });
      if (!r.versions.length) throw notFound(`tool ${name}`);
      return { name, disabled: r.disabled, versions: r.versions.map(toolVersionToPb) };
    }),
    DisableTool: unary(m('Tools', 'DisableTool'), deps, async (req: PbToolNameRequest, ctx: CallContext): Promise<PbToolSwitchResponse> => {
      await ctx.authorize('tools.disable', req.tenant, undefined);
      const name = resourceName(req.name, 'name', 'tool');
      ctx.checkpoint();
      return rpc.call('tools.setDisabled', { tenantId: req.tenant!, name, disabled: true });
    }),
    EnableTool: unary(m('Tools', 'EnableTool'), deps, async (req: PbToolNameRequest, ctx: CallContext): Promise<PbToolSwitchResponse> => {
      await ctx.authorize('tools.enable', req.tenant, undefined);
      const name = resourceName(req.name, 'name', 'tool');
      ctx.checkpoint();
      return rpc.call('tools.setDisabled', { tenantId: req.tenant!, name, disabled: false });
    }),
  };

  const Agents = {
    PutAgent: unary(m('Agents', 'PutAgent'), deps, async (req: PbPutAgentRequest, ctx: CallContext): Promise<PbPutAgentResponse> => {
      const body = agentBodyFromPb(req);
      await ctx.authorize('agents.put', req.tenant, body);
      const name = resourceName(req.name, 'name', 'agent');
      const b = v.assert<Omit<AgentSpec, 'name' | 'tools' | 'limits'> & Partial<Pick<AgentSpec, 'tools' | 'limits'>>>('agent-body', agentBodySchema, body, 'agent definition');
      ctx.checkpoint();
      const { agent, created } = await s.agents.put(req.tenant!, { tools: [], limits: {}, ...b, name });
      return { agent: agentToPb(agent), created };
    }),
    GetAgent: unary(m('Agents', 'GetAgent'), deps, async (req: PbGetAgentRequest, ctx: CallContext): Promise<PbGetAgentResponse> => {
      await ctx.authorize('agents.get', req.tenant, undefined);
      const name = resourceName(req.name, 'name', 'agent');
      const version = given(req.version);
      const ref = version ? `${name}@${version}` : name;
      if (version && !VERSION.test(version)) throw notFound(`agent ${ref}`);
      const agent = await s.agents.resolve(req.tenant!, ref);
      if (!agent) throw notFound(`agent ${ref}`);
      return { agent: agentToPb(agent) };
    }),
    ListAgents: unary(m('Agents', 'ListAgents'), deps, async (req: PbTenantRequest, ctx: CallContext): Promise<PbListAgentsResponse> => {
      await ctx.authorize('agents.list', req.tenant, undefined);
      return { agents: (await s.agents.list(req.tenant!)).map(agentToPb) };
    }),
  };

  const Runs = {
    StartRun: unary(m('Runs', 'StartRun'), deps, async (req: PbStartRunRequest, ctx: CallContext): Promise<PbStartRunResponse> => {
      const body = startRunBodyFromPb(req);
      await ctx.authorize('runs.start', req.tenant, body);
      const b = v.assert<StartRunBody>('start-run', startRunBodySchema, body);
      ctx.checkpoint();
      const { run, created } = await s.runs.start(req.tenant!, b, ctx.header('idempotency-key'));
      return { run: runToPb(run), created };
    }),
    GetRun: unary(m('Runs', 'GetRun'), deps, async (req: PbRunRequest, ctx: CallContext): Promise<PbGetRunResponse> => {
      await ctx.authorize('runs.get', req.tenant, undefined);
      return { run: runToPb(await s.runs.get(req.tenant!, required(req.run_id, 'run_id'))) };
    }),
    ListRuns: unary(m('Runs', 'ListRuns'), deps, async (req: PbListRunsRequest, ctx: CallContext): Promise<PbListRunsResponse> => {
      await ctx.authorize('runs.list', req.tenant, undefined);
      const status = restEnum('RUN_STATUS', req.status);
      if (status !== undefined && !['queued', 'running', 'waiting_approval', 'completed', 'failed', 'cancelled'].includes(status)) {
        throw invalid(`status ${status} is not a run status`, [{ field: 'status', message: 'unknown status' }]);
      }
      const cursor = given(req.cursor);
      if (cursor !== undefined && !isRunId(cursor)) throw invalid('cursor is not a cursor this server issued', [{ field: 'cursor', message: 'is malformed' }]);
      const limit = Math.min(req.limit && req.limit > 0 ? req.limit : DEFAULT_PAGE, MAX_PAGE);
      const page = await s.runs.list(req.tenant!, { limit, status, agent: given(req.agent), cursor });
      return { runs: page.runs.map(runSummaryToPb), next_cursor: page.nextCursor ?? '' };
    }),
    CancelRun: unary(m('Runs', 'CancelRun'), deps, async (req: PbCancelRunRequest, ctx: CallContext): Promise<PbCancelRunResponse> => {
      const body = compact({ reason: given(req.reason) });
      await ctx.authorize('runs.cancel', req.tenant, body);
      const runId = required(req.run_id, 'run_id');
      const b = v.assert<{ reason?: string }>('cancel-run', cancelRunBodySchema, body);
      ctx.checkpoint();
      try {
        return { run: runToPb(await s.runs.cancel(req.tenant!, runId, b.reason)) };
      } catch (e) {
        // runs.proto: cancelling a run that already ended changes nothing and returns it as it is
        if (e instanceof AgentmeshError && e.code === 'conflict' && e.extra.reason === 'run_ended') {
          return { run: runToPb(await s.runs.get(req.tenant!, runId)) };
        }
        throw e;
      }
    }),
    WatchRun: serverStream(m('Runs', 'WatchRun'), deps, async (req: PbWatchRunRequest, ctx: CallContext, send: (e: PbRunEvent) => Promise<void>) => {
      await ctx.authorize('runs.events', req.tenant, undefined);
      const runId = required(req.run_id, 'run_id');
      const raw = String(req.after_seq ?? '0');
      const after = /^[0-9]{1,16}$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(after)) throw invalid('after_seq must be a journal sequence', [{ field: 'after_seq', message: 'out of range' }]);
      const events = await s.runs.events(req.tenant!, runId, after, ctx.signal);
      let sent = 0;
      let lastSeq = after;
      let terminal = false;
      const resume = () => `the event stream was interrupted; call again with after_seq = the last seq received (${lastSeq})`;
      try {
        for await (const e of events) {
          if (ctx.signal.aborted) break;
          await send(eventToPb(e));
          sent++;
          lastSeq = e.seq;
          if (['run.completed', 'run.failed', 'run.cancelled'].includes(e.type)) { terminal = true; break; }
        }
      } catch (err) {
        ctx.checkpoint();
        if (err instanceof AgentmeshError) throw err;
        deps.logger.warn({ err, runId }, 'run event stream failed');
        throw unavailable(resume(), err);
      }
      ctx.checkpoint();
      if (terminal) return;
      // nothing new after after_seq: fine for a run that has ended (nothing will ever come), a broken stream otherwise
      if (sent === 0 && isTerminalStatus((await s.runs.get(req.tenant!, runId)).status)) return;
      throw unavailable(resume());
    }),
  };

  let approvals = s.approvals;
  if (!approvals) {
    approvals = new ApprovalsService(s.nc, deps.auth, deps.logger);
    await approvals.onModuleInit();
  }
  const decisions = approvals;

  const Approvals = {
    ListApprovals: unary(m('Approvals', 'ListApprovals'), deps, async (req: PbListApprovalsRequest, ctx: CallContext): Promise<PbListApprovalsResponse> => {
      await ctx.authorize('approvals.list', req.tenant, undefined);
      const status = approvalStatusParam(restEnum('APPROVAL_STATUS', req.status));
      return { approvals: (await decisions.list(req.tenant!, status)).map(approvalToPb) };
    }),
    DecideApproval: unary(m('Approvals', 'DecideApproval'), deps, async (req: PbDecideApprovalRequest, ctx: CallContext): Promise<PbDecideApprovalResponse> => {
      const body = compact({ decision: restEnum('DECISION', req.decision), reason: given(req.reason) });
      const principal = await ctx.authorize('approvals.decide', req.tenant, body);
      const id = required(req.approval_id, 'approval_id');
      const b = v.assert<DecideApprovalBody>('decide-approval', decideApprovalBodySchema, body);
      ctx.checkpoint();
      const { approval } = await decisions.decide(principal, req.tenant!, id, b);
      // not confirmed in time (REST 202): the decision is queued; the approval is returned as it is (pending)
      return { approval: approvalToPb(approval) };
    }),
  };

  // security-relevant calls go to the audit trail on success, as their REST twins do
  const audit = s.audit ?? await AuditLog.open(s.nc, deps.logger);
  return auditGrpcCalls(audit, deps.auth, deps.logger, {
    [`${PKG}.Tenants`]: Tenants,
    [`${PKG}.Tools`]: Tools,
    [`${PKG}.Agents`]: Agents,
    [`${PKG}.Runs`]: Runs,
    [`${PKG}.Approvals`]: Approvals,
    [`${PKG}.Credentials`]: credentialsService(rpc, deps, (name) => m('Credentials', name)),
    [`${PKG}.Budgets`]: budgetsService(new BudgetsApi(s.nc, s.budgetStateCacheMs), deps, (name) => m('Budgets', name)),
    [`${PKG}.Audit`]: auditService(audit, deps, (name) => m('Audit', name), s.auditSearch),
    // PutPolicy records its own audit entry (with the rules), as PUT /policy does
    [`${PKG}.Policies`]: policiesService(new TenantPolicyApi(s.policy, audit), deps, (name) => m('Policies', name)),
    [`${PKG}.Sessions`]: sessionsService(s.sessions, deps, (name) => m('Sessions', name)),
  });
}

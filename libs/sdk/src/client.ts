import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  Client, credentials as grpcCredentials, Metadata, status as Status,
  type CallOptions as GrpcCallOptions, type ChannelCredentials, type ChannelOptions, type MethodDefinition, type ServiceError,
} from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { PROTO_FILES, PROTO_PACKAGE, protoLoaderOptions, type JsonValue } from '#libs/contracts';
import {
  agentFromPb, apiKeyFromPb, approvalFromPb, auditPageFromPb, auditSearchFromPb, budgetFromPb, credentialFromPb, eventFromPb, policyFromPb, policyRuleToPb,
  putAgentToPb, putToolToPb, runFromPb, sessionFromPb, tenantFromPb, toolFromPb, toolVersionFromPb, usageFromPb,
} from './convert.js';
import { toPbTimestamp, toPbValue } from './json-struct.js';
import {
  enumFromRest, type PbCancelRunResponse, type PbCreateTenantResponse, type PbDecideApprovalResponse, type PbGetAgentResponse,
  type PbGetBudgetResponse, type PbGetPolicyResponse, type PbGetRunResponse, type PbGetSessionResponse, type PbGetToolResponse,
  type PbGetUsageResponse, type PbIssueApiKeyResponse, type PbListAgentsResponse, type PbListApprovalsResponse, type PbListAuditResponse,
  type PbListCredentialsResponse, type PbListRunsResponse, type PbListToolsResponse, type PbPutAgentResponse, type PbPutBudgetRequest,
  type PbPutBudgetResponse, type PbPutCredentialResponse, type PbPutPolicyRequest, type PbPutPolicyResponse, type PbPutToolResponse,
  type PbRevokeApiKeyResponse, type PbRevokeCredentialResponse, type PbRunEvent, type PbStartRunResponse, type PbToolSwitchResponse,
} from './pb.js';
import { decodeStatusDetails, STATUS_DETAILS_KEY, type ErrorDetail } from './status-details.js';
import type {
  Agent, AgentDefinitionInput, ApiKey, Approval, ApprovalStatus, AuditPage, AuditSearchPage, Budget, BudgetSettingsInput, CallOptions, Credential,
  CredentialInput, Policy, PolicyRule, Role, Run, RunEvent, RunStatus, ServingStatus, Session, Tenant, Tool, ToolDefinitionInput,
  ToolVersion, Usage, UsageGroupBy,
} from './types.js';

export interface AgentmeshClientOptions {
  /** `host:port` of the gateway's gRPC endpoint, e.g. `localhost:50051`. */
  address: string;
  /** API key sent as `authorization: Bearer <key>`; leave it out for health and reflection only. */
  apiKey?: string;
  /** Channel credentials; plaintext by default (local use). Pass `credentials.createSsl()` for TLS. */
  credentials?: ChannelCredentials;
  /** Default deadline of unary calls in milliseconds (30 s). WatchRun has none unless given. */
  timeoutMs?: number;
  channelOptions?: ChannelOptions;
}

/**
 * A failed call: the gRPC status plus the platform's problem detail from
 * `grpc-status-details-bin` (the same fields as a REST problem body).
 */
export class AgentmeshGrpcError extends Error {
  override name = 'AgentmeshGrpcError';
  /** The platform's error class (`invalid_argument`, `conflict`...), or the status name in lowercase when the server sent no detail. */
  readonly code: string;
  readonly grpcCode: Status;
  /** `NOT_FOUND`, `ALREADY_EXISTS`... */
  readonly grpcStatus: string;
  readonly detail: ErrorDetail | undefined;
  readonly retryAfterSeconds: number | undefined;
  readonly metadata: Metadata | undefined;

  constructor(e: Partial<ServiceError> & { code: Status }, options?: { cause?: unknown }) {
    const bin = e.metadata?.get(STATUS_DETAILS_KEY)[0];
    let detail: ErrorDetail | undefined;
    if (bin instanceof Buffer) {
      try { detail = decodeStatusDetails(bin).detail; } catch { detail = undefined; }
    }
    super(e.details || detail?.detail || e.message || Status[e.code], { cause: options?.cause ?? e });
    this.grpcCode = e.code;
    this.grpcStatus = Status[e.code] ?? String(e.code);
    this.detail = detail;
    this.code = detail?.code || this.grpcStatus.toLowerCase();
    const header = e.metadata?.get('retry-after')[0];
    const retry = detail?.retryAfterSeconds || (typeof header === 'string' ? Number(header) : 0);
    this.retryAfterSeconds = retry > 0 ? retry : undefined;
    this.metadata = e.metadata;
  }
}

const isServiceError = (e: unknown): e is ServiceError =>
  e instanceof Error && typeof (e as Partial<ServiceError>).code === 'number' && 'metadata' in e;

let contract: PackageDefinition | undefined;
let extras: PackageDefinition | undefined;

/** The agentmesh contract, loaded once per process. */
function contractDefinition(): PackageDefinition {
  contract ??= loadSync([...PROTO_FILES], protoLoaderOptions());
  return contract;
}

/** grpc.health.v1 and grpc.reflection.v1, from the packages that implement them on the server. */
function opsDefinition(): PackageDefinition {
  if (!extras) {
    const require = createRequire(import.meta.url);
    const health = (require('grpc-health-check') as { protoPath: string }).protoPath;
    const reflection = join(dirname(require.resolve('@grpc/reflection')), '../proto/grpc/reflection/v1/reflection.proto');
    extras = loadSync([health, reflection], { ...protoLoaderOptions(), includeDirs: [] });
  }
  return extras;
}

function method<Req, Res>(pkg: PackageDefinition, service: string, name: string): MethodDefinition<Req, Res> {
  const def = (pkg[service] as unknown as Record<string, MethodDefinition<Req, Res>> | undefined)?.[name];
  if (!def) throw new Error(`${service}/${name} is not in the loaded contract`);
  return def;
}

/**
 * A typed client of the agentmesh gRPC API. Methods take and return the REST shapes (camelCase,
 * lowercase enums, ISO instants, plain JSON); failures throw AgentmeshGrpcError.
 *
 *   const am = new AgentmeshClient({ address: 'localhost:50051', apiKey });
 *   const { run } = await am.startRun({ tenant: 'acme', agent: 'hello', input: { name: 'Ada' } });
 *   for await (const e of am.watchRun({ tenant: 'acme', runId: run.id })) console.log(e.seq, e.type);
 */
export class AgentmeshClient {
  private readonly client: Client;
  private readonly timeoutMs: number;

  constructor(private readonly opts: AgentmeshClientOptions) {
    this.client = new Client(opts.address, opts.credentials ?? grpcCredentials.createInsecure(), opts.channelOptions ?? {});
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  close(): void {
    this.client.close();
  }

  // ---- plumbing

  private metadata(opts: CallOptions, extra: Record<string, string> = {}): Metadata {
    const md = new Metadata();
    if (this.opts.apiKey) md.set('authorization', `Bearer ${this.opts.apiKey}`);
    for (const [k, v] of Object.entries({ ...extra, ...(opts.metadata ?? {}) })) md.set(k, v);
    return md;
  }

  private callOptions(opts: CallOptions, defaultTimeout: number | undefined): GrpcCallOptions {
    const ms = opts.timeoutMs ?? defaultTimeout;
    return ms === undefined ? {} : { deadline: Date.now() + ms };
  }

  /** Calls one unary method with a proto request and returns the proto response. */
  call<Res>(service: string, name: string, request: object, opts: CallOptions = {}, extraMetadata: Record<string, string> = {}): Promise<Res> {
    const pkg = service.startsWith(`${PROTO_PACKAGE}.`) ? contractDefinition() : opsDefinition();
    const def = method<object, Res>(pkg, service, name);
    return new Promise<Res>((resolve, reject) => {
      if (opts.signal?.aborted) { reject(new AgentmeshGrpcError({ code: Status.CANCELLED, details: 'cancelled before it started' })); return; }
      const onAbort = () => call.cancel();
      const call = this.client.makeUnaryRequest(
        def.path, def.requestSerialize, def.responseDeserialize, request, this.metadata(opts, extraMetadata), this.callOptions(opts, this.timeoutMs),
        (err, res) => {
          opts.signal?.removeEventListener('abort', onAbort);
          if (err) reject(new AgentmeshGrpcError(err));
          else resolve(res as Res);
        },
      );
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private rpc<Res>(service: string, name: string, request: object, opts?: CallOptions, extraMetadata?: Record<string, string>): Promise<Res> {
    return this.call<Res>(`${PROTO_PACKAGE}.${service}`, name, request, opts, extraMetadata);
  }

  // ---- Tenants

  async createTenant(req: { id: string; name?: string }, opts?: CallOptions): Promise<Tenant> {
    const r = await this.rpc<PbCreateTenantResponse>('Tenants', 'CreateTenant', { id: req.id, name: req.name ?? '' }, opts);
    return tenantFromPb(r.tenant);
  }

  /** The key is in this answer and never again. */
  async issueApiKey(req: { tenant: string; roles: Role[]; name?: string }, opts?: CallOptions): Promise<{ apiKey: ApiKey; key: string }> {
    const r = await this.rpc<PbIssueApiKeyResponse>('Tenants', 'IssueApiKey', { tenant: req.tenant, name: req.name ?? '', roles: req.roles.map((x) => enumFromRest('ROLE', x)) }, opts);
    return { apiKey: apiKeyFromPb(r.api_key), key: r.key ?? '' };
  }

  async revokeApiKey(req: { tenant: string; keyId: string }, opts?: CallOptions): Promise<ApiKey> {
    const r = await this.rpc<PbRevokeApiKeyResponse>('Tenants', 'RevokeApiKey', { tenant: req.tenant, key_id: req.keyId }, opts);
    return apiKeyFromPb(r.api_key);
  }

  // ---- Tools

  async putTool(req: { tenant: string; name: string } & ToolDefinitionInput, opts?: CallOptions): Promise<{ tool: ToolVersion; created: boolean }> {
    const { tenant, name, ...def } = req;
    const r = await this.rpc<PbPutToolResponse>('Tools', 'PutTool', putToolToPb(tenant, name, def), opts);
    return { tool: toolVersionFromPb(r.tool), created: r.created ?? false };
  }

  async listTools(req: { tenant: string }, opts?: CallOptions): Promise<Tool[]> {
    return ((await this.rpc<PbListToolsResponse>('Tools', 'ListTools', req, opts)).tools ?? []).map(toolFromPb);
  }

  async getTool(req: { tenant: string; name: string }, opts?: CallOptions): Promise<{ name: string; disabled: boolean; versions: ToolVersion[] }> {
    const r = await this.rpc<PbGetToolResponse>('Tools', 'GetTool', req, opts);
    return { name: r.name ?? '', disabled: r.disabled ?? false, versions: (r.versions ?? []).map(toolVersionFromPb) };
  }

  async disableTool(req: { tenant: string; name: string }, opts?: CallOptions): Promise<{ name: string; disabled: boolean }> {
    const r = await this.rpc<PbToolSwitchResponse>('Tools', 'DisableTool', req, opts);
    return { name: r.name ?? '', disabled: r.disabled ?? false };
  }

  async enableTool(req: { tenant: string; name: string }, opts?: CallOptions): Promise<{ name: string; disabled: boolean }> {
    const r = await this.rpc<PbToolSwitchResponse>('Tools', 'EnableTool', req, opts);
    return { name: r.name ?? '', disabled: r.disabled ?? false };
  }

  // ---- Agents

  async putAgent(req: { tenant: string; name: string } & AgentDefinitionInput, opts?: CallOptions): Promise<{ agent: Agent; created: boolean }> {
    const { tenant, name, ...def } = req;
    const r = await this.rpc<PbPutAgentResponse>('Agents', 'PutAgent', putAgentToPb(tenant, name, def), opts);
    return { agent: agentFromPb(r.agent), created: r.created ?? false };
  }

  /** One version of an agent; the latest when `version` is left out. */
  async getAgent(req: { tenant: string; name: string; version?: string }, opts?: CallOptions): Promise<Agent> {
    return agentFromPb((await this.rpc<PbGetAgentResponse>('Agents', 'GetAgent', { ...req, version: req.version ?? '' }, opts)).agent);
  }

  async listAgents(req: { tenant: string }, opts?: CallOptions): Promise<Agent[]> {
    return ((await this.rpc<PbListAgentsResponse>('Agents', 'ListAgents', req, opts)).agents ?? []).map(agentFromPb);
  }

  // ---- Runs

  /** Starts a run; with `idempotencyKey` the same key and request return the same run (`created: false`). */
  async startRun(
    req: { tenant: string; agent: string; input?: JsonValue; sessionId?: string; metadata?: Record<string, string> },
    opts: CallOptions & { idempotencyKey?: string } = {},
  ): Promise<{ run: Run; created: boolean }> {
    const pb = {
      tenant: req.tenant, agent: req.agent, input: req.input === undefined ? null : toPbValue(req.input),
      session_id: req.sessionId ?? '', metadata: req.metadata ?? {},
    };
    const r = await this.rpc<PbStartRunResponse>('Runs', 'StartRun', pb, opts, opts.idempotencyKey !== undefined ? { 'idempotency-key': opts.idempotencyKey } : {});
    return { run: runFromPb(r.run), created: r.created ?? false };
  }

  async getRun(req: { tenant: string; runId: string }, opts?: CallOptions): Promise<Run> {
    return runFromPb((await this.rpc<PbGetRunResponse>('Runs', 'GetRun', { tenant: req.tenant, run_id: req.runId }, opts)).run);
  }

  /** Newest first; pass `nextCursor` back as `cursor` (with the same filters) for the next page. */
  async listRuns(
    req: { tenant: string; status?: RunStatus; agent?: string; limit?: number; cursor?: string },
    opts?: CallOptions,
  ): Promise<{ runs: Run[]; nextCursor: string | null }> {
    const r = await this.rpc<PbListRunsResponse>('Runs', 'ListRuns', {
      tenant: req.tenant, status: enumFromRest('RUN_STATUS', req.status), agent: req.agent ?? '', limit: req.limit ?? 0, cursor: req.cursor ?? '',
    }, opts);
    return { runs: (r.runs ?? []).map(runFromPb), nextCursor: r.next_cursor ? r.next_cursor : null };
  }

  async cancelRun(req: { tenant: string; runId: string; reason?: string }, opts?: CallOptions): Promise<Run> {
    return runFromPb((await this.rpc<PbCancelRunResponse>('Runs', 'CancelRun', { tenant: req.tenant, run_id: req.runId, reason: req.reason ?? '' }, opts)).run);
  }

  /**
   * The run's journal events with `seq > afterSeq`, live until the terminal event. Breaking out
   * of the loop, or aborting `opts.signal`, cancels the stream (and ends the iteration quietly).
   * After a failure, call again with `afterSeq` = the last `seq` received.
   */
  async *watchRun(req: { tenant: string; runId: string; afterSeq?: number }, opts: CallOptions = {}): AsyncGenerator<RunEvent, void, undefined> {
    const def = method<object, PbRunEvent>(contractDefinition(), `${PROTO_PACKAGE}.Runs`, 'WatchRun');
    const stream = this.client.makeServerStreamRequest(
      def.path, def.requestSerialize, def.responseDeserialize,
      { tenant: req.tenant, run_id: req.runId, after_seq: String(req.afterSeq ?? 0) },
      this.metadata(opts), this.callOptions(opts, undefined),
    );
    const onAbort = () => stream.cancel();
    if (opts.signal?.aborted) stream.cancel();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const m of stream as AsyncIterable<PbRunEvent>) yield eventFromPb(m);
    } catch (e) {
      if (opts.signal?.aborted && isServiceError(e) && e.code === Status.CANCELLED) return;
      throw isServiceError(e) ? new AgentmeshGrpcError(e) : e;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      stream.cancel();
    }
  }

  // ---- Approvals, Credentials, Budgets

  async listApprovals(req: { tenant: string; status?: ApprovalStatus }, opts?: CallOptions): Promise<Approval[]> {
    const r = await this.rpc<PbListApprovalsResponse>('Approvals', 'ListApprovals', { tenant: req.tenant, status: enumFromRest('APPROVAL_STATUS', req.status) }, opts);
    return (r.approvals ?? []).map(approvalFromPb);
  }

  async decideApproval(req: { tenant: string; approvalId: string; decision: 'approve' | 'deny'; reason?: string }, opts?: CallOptions): Promise<Approval> {
    const r = await this.rpc<PbDecideApprovalResponse>('Approvals', 'DecideApproval', {
      tenant: req.tenant, approval_id: req.approvalId, decision: enumFromRest('DECISION', req.decision), reason: req.reason ?? '',
    }, opts);
    return approvalFromPb(r.approval ?? {});
  }

  async putCredential(req: { tenant: string; name: string } & CredentialInput, opts?: CallOptions): Promise<{ credential: Credential; created: boolean }> {
    const o = req.oauth2ClientCredentials;
    const r = await this.rpc<PbPutCredentialResponse>('Credentials', 'PutCredential', {
      tenant: req.tenant, name: req.name, kind: enumFromRest('CREDENTIAL_KIND', req.kind),
      ...(req.secret !== undefined ? { secret: req.secret } : {}),
      ...(o ? { oauth2_client_credentials: { token_url: o.tokenUrl, client_id: o.clientId, client_secret: o.clientSecret } } : {}),
      allowed_tools: req.allowedTools ?? [], scopes: req.scopes ?? [],
    }, opts);
    return { credential: credentialFromPb(r.credential), created: r.created ?? false };
  }

  async listCredentials(req: { tenant: string }, opts?: CallOptions): Promise<Credential[]> {
    return ((await this.rpc<PbListCredentialsResponse>('Credentials', 'ListCredentials', req, opts)).credentials ?? []).map(credentialFromPb);
  }

  /** Revokes a credential: the next call of a tool that uses it fails closed (`credential_revoked`). */
  async revokeCredential(req: { tenant: string; name: string }, opts?: CallOptions): Promise<{ name: string }> {
    const r = await this.rpc<PbRevokeCredentialResponse>('Credentials', 'RevokeCredential', { tenant: req.tenant, name: req.name }, opts);
    return { name: r.name ?? '' };
  }

  async getBudget(req: { tenant: string }, opts?: CallOptions): Promise<Budget> {
    return budgetFromPb((await this.rpc<PbGetBudgetResponse>('Budgets', 'GetBudget', { tenant: req.tenant }, opts)).budget);
  }

  /** Sets the budget: `limitUsd: null` means no limit, 0 stops all spending; `agents` caps single agents. */
  async putBudget(req: { tenant: string } & BudgetSettingsInput, opts?: CallOptions): Promise<Budget> {
    const pb: PbPutBudgetRequest = {
      tenant: req.tenant, period: enumFromRest('BUDGET_PERIOD', req.period),
      ...(req.limitUsd !== null && req.limitUsd !== undefined ? { limit_usd: req.limitUsd } : {}),
      agents: Object.fromEntries(Object.entries(req.agents ?? {}).map(([k, v]) => [k, v.limitUsd !== null && v.limitUsd !== undefined ? { limit_usd: v.limitUsd } : {}])),
    };
    return budgetFromPb((await this.rpc<PbPutBudgetResponse>('Budgets', 'PutBudget', pb, opts)).budget);
  }

  /** Metered usage over [from, to) (defaults: the start of the current month, now), optionally grouped. */
  async getUsage(req: { tenant: string; from?: string; to?: string; groupBy?: UsageGroupBy }, opts?: CallOptions): Promise<Usage> {
    const r = await this.rpc<PbGetUsageResponse>('Budgets', 'GetUsage', {
      tenant: req.tenant, from: req.from ? toPbTimestamp(req.from) : null, to: req.to ? toPbTimestamp(req.to) : null,
      group_by: enumFromRest('USAGE_GROUP_BY', req.groupBy),
    }, opts);
    return usageFromPb(r);
  }

  // ---- Audit, Policies, Sessions

  /** A page of the tenant's audit trail after chain position `after` (0: from the start); pass `next` back as `after`. */
  async listAudit(req: { tenant: string; after?: number; limit?: number }, opts?: CallOptions): Promise<AuditPage> {
    const r = await this.rpc<PbListAuditResponse>('Audit', 'ListAudit', { tenant: req.tenant, after: String(req.after ?? 0), limit: req.limit ?? 0 }, opts);
    return auditPageFromPb(r);
  }

  /**
   * Searches the tenant's audit trail (newest first) by operation id and time (`from` <= at < `to`);
   * pass `nextCursor` back as `cursor`. REST: GET /v1/tenants/{t}/audit?action=&from=&to=&cursor=&limit=.
   */
  async searchAudit(
    req: { tenant: string; action?: string; from?: string | Date; to?: string | Date; cursor?: string; limit?: number }, opts?: CallOptions,
  ): Promise<AuditSearchPage> {
    const r = await this.rpc<PbListAuditResponse>('Audit', 'ListAudit', {
      tenant: req.tenant, after: '0', limit: req.limit ?? 0, action: req.action ?? '', cursor: req.cursor ?? '',
      from: req.from ? toPbTimestamp(req.from) : null, to: req.to ? toPbTimestamp(req.to) : null,
    }, opts);
    return auditSearchFromPb(r);
  }

  async getPolicy(req: { tenant: string }, opts?: CallOptions): Promise<Policy> {
    return policyFromPb((await this.rpc<PbGetPolicyResponse>('Policies', 'GetPolicy', { tenant: req.tenant }, opts)).policy);
  }

  /** Replaces the tenant's rules; with `revision`, only if nobody changed them since (ABORTED, reason policy_conflict). */
  async putPolicy(req: { tenant: string; rules: PolicyRule[]; revision?: number }, opts?: CallOptions): Promise<Policy> {
    const pb: PbPutPolicyRequest = {
      tenant: req.tenant, rules: req.rules.map(policyRuleToPb), ...(req.revision !== undefined ? { revision: String(req.revision) } : {}),
    };
    return policyFromPb((await this.rpc<PbPutPolicyResponse>('Policies', 'PutPolicy', pb, opts)).policy);
  }

  async getSession(req: { tenant: string; sessionId: string }, opts?: CallOptions): Promise<Session> {
    return sessionFromPb((await this.rpc<PbGetSessionResponse>('Sessions', 'GetSession', { tenant: req.tenant, session_id: req.sessionId }, opts)).session);
  }

  // ---- operations: health and reflection (no key needed)

  /** grpc.health.v1.Health/Check of a service ('' = the server). */
  async checkHealth(service = '', opts?: CallOptions): Promise<ServingStatus> {
    try {
      const r = await this.call<{ status?: string }>('grpc.health.v1.Health', 'Check', { service }, opts);
      return (r.status ?? 'UNKNOWN') as ServingStatus;
    } catch (e) {
      if (e instanceof AgentmeshGrpcError && e.grpcCode === Status.NOT_FOUND) return 'SERVICE_UNKNOWN';
      throw e;
    }
  }

  /** The services the server lists through reflection (grpc.reflection.v1). */
  async listServices(opts: CallOptions = {}): Promise<string[]> {
    const def = method<object, { list_services_response?: { service?: Array<{ name?: string }> } | null; error_response?: { error_message?: string } | null }>(
      opsDefinition(), 'grpc.reflection.v1.ServerReflection', 'ServerReflectionInfo',
    );
    const stream = this.client.makeBidiStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, this.metadata(opts), this.callOptions(opts, this.timeoutMs));
    try {
      stream.write({ host: '', list_services: '' });
      stream.end();
      for await (const r of stream as AsyncIterable<{ list_services_response?: { service?: Array<{ name?: string }> } | null; error_response?: { error_message?: string } | null }>) {
        if (r.error_response) throw new AgentmeshGrpcError({ code: Status.INTERNAL, details: r.error_response.error_message ?? 'reflection error' });
        if (r.list_services_response) return (r.list_services_response.service ?? []).map((s) => s.name ?? '').sort();
      }
      return [];
    } catch (e) {
      throw isServiceError(e) ? new AgentmeshGrpcError(e) : e;
    } finally {
      stream.cancel();
    }
  }
}

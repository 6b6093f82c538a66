import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { status as Status } from '@grpc/grpc-js';
import { AgentmeshClient, AgentmeshGrpcError, type AgentDefinitionInput, type RunEvent, type ToolDefinitionInput } from '#libs/sdk';
import { auditHash, type AuditRecord as StoredAuditRecord } from '../apps/gateway/src/audit/chain.js';
import { client as restClient, eventually, grpcFailure, startTestMesh, type Mesh } from './support/harness.js';
import { Gate } from './support/gate.js';

const ECHO: ToolDefinitionInput = { version: '1', description: 'returns its arguments', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'builtin', name: 'echo' } };
const TRANSFORM: ToolDefinitionInput = {
  version: '1', description: 'transforms text', riskTier: 'read',
  inputSchema: { type: 'object', required: ['text', 'op'] }, transport: { kind: 'builtin', name: 'transform' },
};
const HELLO: AgentDefinitionInput = {
  version: '1', planner: 'graph', tools: ['echo', 'transform'],
  steps: [
    { id: 'greet', tool: 'echo', args: { text: 'Hello, {{input.name}}!' } },
    { id: 'shout', tool: 'transform', args: { text: '{{steps.greet.result.text}}', op: 'upper' } },
  ],
};
const HELLO_EVENTS = [
  'run.created', 'run.started', 'step.started', 'tool.called', 'tool.completed',
  'step.started', 'tool.called', 'tool.completed', 'run.completed',
];

async function collect(events: AsyncIterable<RunEvent>, stopAfter?: (e: RunEvent) => boolean): Promise<RunEvent[]> {
  const out: RunEvent[] = [];
  for await (const e of events) {
    out.push(e);
    if (stopAfter?.(e)) break;
  }
  return out;
}

describe('the gRPC API', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let address: string;
  let admin: AgentmeshClient;
  let owner: AgentmeshClient;
  let ownerKey: string;
  let t: string;
  let gate: Gate;
  const clients: AgentmeshClient[] = [];
  const client = (apiKey?: string) => {
    const c = new AgentmeshClient({ address, ...(apiKey !== undefined ? { apiKey } : {}) });
    clients.push(c);
    return c;
  };
  /** The gateway's gauge of open WatchRun streams (each one holds a journal consumer). */
  const openWatchStreams = async (): Promise<number> => {
    const text = await (await fetch(`${mesh.gatewayUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('agentmesh_grpc_streams_active{') && l.includes('WatchRun'));
    return line ? Number(line.split(' ').pop()) : 0;
  };

  beforeAll(async () => {
    mesh = await startTestMesh();
    address = `127.0.0.1:${mesh.grpcPort}`;
    admin = client(mesh.adminKey);
    gate = await Gate.open();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await gate?.close();
    await mesh?.cleanup();
  });

  it('runs the whole lifecycle: tenant, key, tools, agent, run, watch to completion', async () => {
    t = `grpc-${process.pid}`;
    const tenant = await admin.createTenant({ id: t, name: 'gRPC Inc.' });
    expect(tenant).toMatchObject({ id: t, name: 'gRPC Inc.' });
    expect(Date.parse(tenant.createdAt)).toBeGreaterThan(0);

    const issued = await admin.issueApiKey({ tenant: t, roles: ['owner'], name: 'ci' });
    expect(issued.key).toMatch(/^amk_/);
    expect(issued.apiKey).toMatchObject({ tenantId: t, name: 'ci', roles: ['owner'], revokedAt: null });
    expect(JSON.stringify(issued.apiKey)).not.toContain(issued.key);
    ownerKey = issued.key;
    owner = client(ownerKey);

    expect((await owner.putTool({ tenant: t, name: 'echo', ...ECHO })).created).toBe(true);
    const tr = await owner.putTool({ tenant: t, name: 'transform', ...TRANSFORM });
    expect(tr).toMatchObject({ created: true, tool: { name: 'transform', version: '1', riskTier: 'read', transport: { kind: 'builtin', name: 'transform' }, inputSchema: TRANSFORM.inputSchema } });
    expect(tr.tool.digest).toMatch(/^[0-9a-f]{64}$/);
    expect((await owner.putTool({ tenant: t, name: 'echo', ...ECHO })).created).toBe(false); // same body again
    expect((await owner.listTools({ tenant: t })).map((x) => [x.name, x.disabled, x.latest?.version])).toEqual([['echo', false, '1'], ['transform', false, '1']]);
    expect(await owner.disableTool({ tenant: t, name: 'transform' })).toEqual({ name: 'transform', disabled: true });
    expect((await owner.getTool({ tenant: t, name: 'transform' })).disabled).toBe(true);
    expect(await owner.enableTool({ tenant: t, name: 'transform' })).toEqual({ name: 'transform', disabled: false });
    expect((await owner.getTool({ tenant: t, name: 'echo' })).versions.map((v) => v.version)).toEqual(['1']);

    const put = await owner.putAgent({ tenant: t, name: 'hello', ...HELLO });
    expect(put).toMatchObject({ created: true, agent: { name: 'hello', version: '1', planner: 'graph', tools: ['echo', 'transform'], steps: HELLO.steps } });
    expect(await owner.getAgent({ tenant: t, name: 'hello' })).toEqual(put.agent);
    expect(await owner.getAgent({ tenant: t, name: 'hello', version: '1' })).toEqual(put.agent);
    expect((await owner.listAgents({ tenant: t })).map((a) => a.name)).toEqual(['hello']);

    const started = await owner.startRun({ tenant: t, agent: 'hello', input: { name: 'Ada' }, metadata: { origin: 'e2e' } });
    expect(started.created).toBe(true);
    expect(started.run).toMatchObject({ agent: 'hello@1', status: 'queued', steps: 0, output: null, error: null });
    expect(started.run.id).toMatch(/^run_[0-9A-Z]{26}$/);

    const events = await collect(owner.watchRun({ tenant: t, runId: started.run.id }));
    expect(events.map((e) => e.type)).toEqual(HELLO_EVENTS);
    for (const e of events) expect(e).toMatchObject({ runId: started.run.id, tenantId: t });
    for (let i = 1; i < events.length; i++) expect(events[i].seq).toBeGreaterThan(events[i - 1].seq);
    expect(events[0].data).toMatchObject({ input: { name: 'Ada' }, metadata: { origin: 'e2e' } });
    expect(events.at(-1)?.data).toMatchObject({ output: { text: 'HELLO, ADA!' } });

    const run = await owner.getRun({ tenant: t, runId: started.run.id });
    expect(run).toMatchObject({ status: 'completed', steps: 2, output: { text: 'HELLO, ADA!' }, error: null, cost: { usd: 0, inputTokens: 0, outputTokens: 0 } });
    const list = await owner.listRuns({ tenant: t, agent: 'hello' });
    expect(list.runs.map((r) => r.id)).toEqual([started.run.id]);
    expect(list.nextCursor).toBeNull();
  });

  it('lists runs newest first, a page at a time', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await owner.startRun({ tenant: t, agent: 'hello', input: { name: `n${i}` } })).run.id);
    for (const id of ids) await collect(owner.watchRun({ tenant: t, runId: id }));
    const p1 = await owner.listRuns({ tenant: t, status: 'completed', limit: 2 });
    expect(p1.runs.map((r) => r.id)).toEqual([ids[2], ids[1]]);
    expect(p1.nextCursor).not.toBeNull();
    const p2 = await owner.listRuns({ tenant: t, status: 'completed', limit: 2, cursor: p1.nextCursor! });
    expect(p2.runs[0].id).toBe(ids[0]);
    expect((await owner.listRuns({ tenant: t, status: 'failed' })).runs).toEqual([]);
  });

  it('resumes WatchRun from the middle of a finished run without loss or duplicates', async () => {
    const { run } = await owner.startRun({ tenant: t, agent: 'hello', input: { name: 'Resume' } });
    const all = await collect(owner.watchRun({ tenant: t, runId: run.id }));
    expect(all.map((e) => e.type)).toEqual(HELLO_EVENTS);
    const resumed = await collect(owner.watchRun({ tenant: t, runId: run.id, afterSeq: all[3].seq }));
    expect(resumed).toEqual(all.slice(4));
    expect(await collect(owner.watchRun({ tenant: t, runId: run.id, afterSeq: all[7].seq }))).toEqual([all[8]]);
    // nothing after the terminal event: the stream ends at once, with OK
    expect(await collect(owner.watchRun({ tenant: t, runId: run.id, afterSeq: all[8].seq }))).toEqual([]);
  });

  describe('with a run held in flight by an HTTP tool', () => {
    beforeAll(async () => {
      const g: ToolDefinitionInput = { version: '1', description: 'waits for the test', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'http', url: `http://127.0.0.1:${gate.port}/gate` }, egress: [`127.0.0.1:${gate.port}`], timeoutMs: 60_000 };
      await owner.putTool({ tenant: t, name: 'gate', ...g });
      await owner.putAgent({ tenant: t, name: 'gated', version: '1', planner: 'graph', tools: ['gate', 'echo'], steps: [{ id: 'wait', tool: 'gate', args: {} }, { id: 'after', tool: 'echo', args: { done: true } }] });
    });

    it('resumes a live stream the client broke, and stops the journal consumer of the broken one', async () => {
      const { run } = await owner.startRun({ tenant: t, agent: 'gated', input: {} });
      const callsBefore = gate.calls;
      // the client goes away in the middle of the run (break cancels the call)
      const first = await collect(owner.watchRun({ tenant: t, runId: run.id }), (e) => e.type === 'tool.called');
      expect(first.map((e) => e.type)).toEqual(['run.created', 'run.started', 'step.started', 'tool.called']);
      await eventually(async () => (await openWatchStreams()) === 0, 'the gateway to close the cancelled WatchRun stream');
      await eventually(async () => gate.calls > callsBefore, 'the tool call to reach the gate');
      const rest = owner.watchRun({ tenant: t, runId: run.id, afterSeq: first.at(-1)!.seq });
      const restP = collect(rest);
      await eventually(async () => (await openWatchStreams()) === 1, 'the resumed stream to be open');
      gate.release();
      const second = await restP;
      const whole = [...first, ...second];
      expect(whole.map((e) => e.type)).toEqual(['run.created', 'run.started', 'step.started', 'tool.called', 'tool.completed', 'step.started', 'tool.called', 'tool.completed', 'run.completed']);
      expect(new Set(whole.map((e) => e.seq)).size).toBe(whole.length);
      expect(whole).toEqual(await collect(owner.watchRun({ tenant: t, runId: run.id })));
      await eventually(async () => (await openWatchStreams()) === 0, 'the finished stream to close');
    });

    it('honours deadlines on WatchRun: the stream ends with DEADLINE_EXCEEDED and its consumer stops', async () => {
      const callsBefore = gate.calls;
      const { run } = await owner.startRun({ tenant: t, agent: 'gated', input: {} });
      const e = await grpcFailure(() => collect(owner.watchRun({ tenant: t, runId: run.id }, { timeoutMs: 1_000 })));
      expect(e.grpcCode).toBe(Status.DEADLINE_EXCEEDED);
      await eventually(async () => (await openWatchStreams()) === 0, 'the gateway to close the expired stream');
      await eventually(async () => gate.calls > callsBefore, 'the gate to hold the call');
      gate.release();
      await eventually(async () => (await owner.getRun({ tenant: t, runId: run.id })).status === 'completed', 'the run to complete');
    });

    it('cancels a long run after the step in flight; cancelling it again returns it as it is', async () => {
      const callsBefore = gate.calls;
      const { run } = await owner.startRun({ tenant: t, agent: 'gated', input: {} });
      const seen = await collect(owner.watchRun({ tenant: t, runId: run.id }), (e) => e.type === 'tool.called');
      const cancelled = await owner.cancelRun({ tenant: t, runId: run.id, reason: 'operator said so' });
      expect(cancelled.id).toBe(run.id);
      expect(['queued', 'running']).toContain(cancelled.status);
      const tail = owner.watchRun({ tenant: t, runId: run.id, afterSeq: seen.at(-1)!.seq });
      const tailP = collect(tail);
      await eventually(async () => gate.calls > callsBefore, 'the gate to hold the call');
      gate.release();
      const rest = await tailP;
      expect(rest.find((e) => e.type === 'run.cancel_requested')).toMatchObject({ data: { reason: 'operator said so' } });
      expect(rest.at(-1)?.type).toBe('run.cancelled');
      expect(rest.map((e) => e.type)).not.toContain('run.completed');
      const done = await owner.getRun({ tenant: t, runId: run.id });
      expect(done).toMatchObject({ status: 'cancelled', steps: 1 });
      expect(await owner.cancelRun({ tenant: t, runId: run.id })).toMatchObject({ id: run.id, status: 'cancelled' });
    });
  });

  describe('maps every class of bad input to its status code and problem detail', () => {
    const expectProblem = (e: AgentmeshGrpcError, grpcCode: Status, code: string, httpStatus: number) => {
      expect(e.grpcCode).toBe(grpcCode);
      expect(e.code).toBe(code);
      expect(e.detail).toMatchObject({ code, httpStatus, title: expect.any(String), type: expect.stringContaining('https://'), detail: e.message });
      expect(e.message.length).toBeGreaterThan(0);
    };

    it('no key and a bad key are UNAUTHENTICATED', async () => {
      expectProblem(await grpcFailure(() => client().listRuns({ tenant: t })), Status.UNAUTHENTICATED, 'unauthenticated', 401);
      expectProblem(await grpcFailure(() => client('amk_nope').listRuns({ tenant: t })), Status.UNAUTHENTICATED, 'unauthenticated', 401);
      expectProblem(await grpcFailure(() => client('').createTenant({ id: 'nokey' })), Status.UNAUTHENTICATED, 'unauthenticated', 401);
    });

    it('a role without the permission, or a tenant key creating tenants, is PERMISSION_DENIED', async () => {
      const viewer = client((await admin.issueApiKey({ tenant: t, roles: ['viewer'] })).key);
      expect((await viewer.listRuns({ tenant: t, limit: 1 })).runs).toHaveLength(1);
      expectProblem(await grpcFailure(() => viewer.startRun({ tenant: t, agent: 'hello' })), Status.PERMISSION_DENIED, 'permission_denied', 403);
      expectProblem(await grpcFailure(() => viewer.putTool({ tenant: t, name: 'x', ...ECHO })), Status.PERMISSION_DENIED, 'permission_denied', 403);
      expectProblem(await grpcFailure(() => owner.createTenant({ id: 'not-mine' })), Status.PERMISSION_DENIED, 'permission_denied', 403);
    });

    it('a revoked key is refused at once', async () => {
      const k = await admin.issueApiKey({ tenant: t, roles: ['viewer'] });
      const c = client(k.key);
      await c.listTools({ tenant: t });
      const revoked = await owner.revokeApiKey({ tenant: t, keyId: k.apiKey.id });
      expect(revoked).toMatchObject({ id: k.apiKey.id, roles: ['viewer'] });
      expect(revoked.revokedAt).not.toBeNull();
      expectProblem(await grpcFailure(() => c.listTools({ tenant: t })), Status.UNAUTHENTICATED, 'unauthenticated', 401);
      expectProblem(await grpcFailure(() => owner.revokeApiKey({ tenant: t, keyId: '01J00000000000000000000000' })), Status.NOT_FOUND, 'not_found', 404);
    });

    it("another tenant's key gets PERMISSION_DENIED or NOT_FOUND and never the data", async () => {
      const { run } = await owner.startRun({ tenant: t, agent: 'hello', input: { name: 'secret-input' } });
      const otherId = `grpc-other-${process.pid}`;
      await admin.createTenant({ id: otherId });
      const other = client((await admin.issueApiKey({ tenant: otherId, roles: ['owner'] })).key);
      const viaPath = await grpcFailure(() => other.getRun({ tenant: t, runId: run.id }));
      expect([Status.PERMISSION_DENIED, Status.NOT_FOUND]).toContain(viaPath.grpcCode);
      expect(JSON.stringify({ m: viaPath.message, d: viaPath.detail })).not.toContain('secret-input');
      expectProblem(await grpcFailure(() => other.getRun({ tenant: otherId, runId: run.id })), Status.NOT_FOUND, 'not_found', 404);
      expectProblem(await grpcFailure(() => collect(other.watchRun({ tenant: otherId, runId: run.id }))), Status.NOT_FOUND, 'not_found', 404);
      expectProblem(await grpcFailure(() => other.cancelRun({ tenant: otherId, runId: run.id })), Status.NOT_FOUND, 'not_found', 404);
      expect([Status.PERMISSION_DENIED, Status.NOT_FOUND]).toContain((await grpcFailure(() => collect(other.watchRun({ tenant: t, runId: run.id })))).grpcCode);
      await collect(owner.watchRun({ tenant: t, runId: run.id }));
      expect((await owner.getRun({ tenant: t, runId: run.id })).status).toBe('completed');
    });

    it('malformed ids are NOT_FOUND, missing ones INVALID_ARGUMENT naming the field', async () => {
      expectProblem(await grpcFailure(() => owner.getRun({ tenant: t, runId: '../../admin' })), Status.NOT_FOUND, 'not_found', 404);
      expectProblem(await grpcFailure(() => owner.getRun({ tenant: t, runId: 'run_01J00000000000000000000000' })), Status.NOT_FOUND, 'not_found', 404);
      expectProblem(await grpcFailure(() => owner.getTool({ tenant: t, name: 'no such/tool' })), Status.NOT_FOUND, 'not_found', 404);
      expectProblem(await grpcFailure(() => owner.getAgent({ tenant: t, name: 'hello', version: '9' })), Status.NOT_FOUND, 'not_found', 404);
      expectProblem(await grpcFailure(() => owner.listRuns({ tenant: 'Not A Tenant!' })), Status.NOT_FOUND, 'not_found', 404);
      const noRun = await grpcFailure(() => owner.getRun({ tenant: t, runId: '' }));
      expectProblem(noRun, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(noRun.detail?.fields).toEqual([{ field: 'run_id', message: 'is required' }]);
      const noTenant = await grpcFailure(() => owner.listTools({ tenant: '' }));
      expectProblem(noTenant, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(noTenant.detail?.fields).toEqual([{ field: 'tenant', message: 'is required' }]);
      const cursor = await grpcFailure(() => owner.listRuns({ tenant: t, cursor: 'garbage' }));
      expectProblem(cursor, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(cursor.detail?.fields).toEqual([{ field: 'cursor', message: 'is malformed' }]);
    });

    it('an invalid body is INVALID_ARGUMENT naming the proto fields, and changes nothing', async () => {
      const before = (await owner.listRuns({ tenant: t, limit: 100 })).runs.length;
      const noAgent = await grpcFailure(() => owner.startRun({ tenant: t, agent: '' }));
      expectProblem(noAgent, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(noAgent.detail?.fields).toEqual([{ field: 'agent', message: 'is required' }]);
      const badSession = await grpcFailure(() => owner.startRun({ tenant: t, agent: 'hello', sessionId: 'not a session!' }));
      expect(badSession.detail?.fields.map((f) => f.field)).toEqual(['session_id']);
      expect((await owner.listRuns({ tenant: t, limit: 100 })).runs.length).toBe(before);

      const badTier = await grpcFailure(() => owner.putTool({ tenant: t, name: 'bad', ...ECHO, riskTier: 'dangerous' as 'read' }));
      expectProblem(badTier, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(badTier.detail?.fields.map((f) => f.field)).toContain('risk_tier');
      const noSteps = await grpcFailure(() => owner.putAgent({ tenant: t, name: 'empty', version: '1', planner: 'graph', steps: [] }));
      expect(noSteps.detail?.fields.map((f) => f.field)).toContain('steps');
      const limits = await grpcFailure(() => owner.putAgent({ tenant: t, name: 'big', ...HELLO, limits: { maxSteps: 1_000_000 } }));
      expect(limits.detail?.fields.map((f) => f.field)).toEqual(['limits.max_steps']);
      const stepTool = await grpcFailure(() => owner.putAgent({ tenant: t, name: 'bad-step', version: '1', planner: 'graph', steps: [{ id: 'a', tool: '' }] }));
      expect(stepTool.detail?.fields).toEqual([{ field: 'steps[0].tool', message: 'is required' }]);
      const roles = await grpcFailure(() => admin.issueApiKey({ tenant: t, roles: [] }));
      expect(roles.detail?.fields.map((f) => f.field)).toEqual(['roles']);
    });

    it('an unknown agent is INVALID_ARGUMENT naming the agent field, as in REST', async () => {
      const e = await grpcFailure(() => owner.startRun({ tenant: t, agent: 'nobody' }));
      expectProblem(e, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(e.detail?.fields).toEqual([{ field: 'agent', message: 'no such agent' }]);
    });

    it('a new body under an existing tool or agent version is ALREADY_EXISTS (version_exists), a taken tenant id too', async () => {
      const tool = await grpcFailure(() => owner.putTool({ tenant: t, name: 'echo', ...ECHO, description: 'changed' }));
      expectProblem(tool, Status.ALREADY_EXISTS, 'conflict', 409);
      expect(tool.detail?.reason).toBe('version_exists');
      const agent = await grpcFailure(() => owner.putAgent({ tenant: t, name: 'hello', ...HELLO, instructions: 'x' }));
      expectProblem(agent, Status.ALREADY_EXISTS, 'conflict', 409);
      expect((await owner.putAgent({ tenant: t, name: 'hello', ...HELLO })).created).toBe(false);
      expectProblem(await grpcFailure(() => admin.createTenant({ id: t })), Status.ALREADY_EXISTS, 'conflict', 409);
    });

    it('the same idempotency-key and request return the same run; another request with it is ALREADY_EXISTS', async () => {
      const body = { tenant: t, agent: 'hello', input: { name: 'Bob' } };
      const a = await owner.startRun(body, { idempotencyKey: 'grpc-k-1' });
      const b = await owner.startRun(body, { idempotencyKey: 'grpc-k-1' });
      expect(a.created).toBe(true);
      expect(b.created).toBe(false);
      expect(b.run.id).toBe(a.run.id);
      const c = await grpcFailure(() => owner.startRun({ ...body, input: { name: 'Eve' } }, { idempotencyKey: 'grpc-k-1' }));
      expectProblem(c, Status.ALREADY_EXISTS, 'conflict', 409);
      expect(c.detail?.reason).toBe('idempotency_key_reused');
      const bad = await grpcFailure(() => owner.startRun(body, { idempotencyKey: 'has spaces' }));
      expect(bad.detail?.fields).toEqual([{ field: 'idempotency-key', message: 'is malformed' }]);
      await collect(owner.watchRun({ tenant: t, runId: a.run.id }));
      const runs = (await owner.listRuns({ tenant: t, agent: 'hello', limit: 100 })).runs;
      expect(runs.filter((r) => r.id === a.run.id)).toHaveLength(1);
    });

    it('a message above the size limit is RESOURCE_EXHAUSTED (payload_too_large), with nothing started', async () => {
      const before = (await owner.listRuns({ tenant: t, limit: 100 })).runs.length;
      const e = await grpcFailure(() => owner.startRun({ tenant: t, agent: 'hello', input: { blob: 'x'.repeat(1_100_000) } }));
      expectProblem(e, Status.RESOURCE_EXHAUSTED, 'payload_too_large', 413);
      expect(e.message).toMatch(/larger than the limit of 1048576 bytes/);
      expect((await owner.listRuns({ tenant: t, limit: 100 })).runs.length).toBe(before);
    });
  });

  describe('the operations that were REST-only before: budgets, usage, credential revocation, audit, policy, sessions', () => {
    const expectCode = (e: AgentmeshGrpcError, grpcCode: Status, code: string, httpStatus: number) => {
      expect({ status: Status[e.grpcCode], code: e.code, httpStatus: e.detail?.httpStatus }).toEqual({ status: Status[grpcCode], code, httpStatus });
      expect(e.detail?.detail).toBe(e.message);
    };
    let viewer: AgentmeshClient;
    let operator: AgentmeshClient;
    const rest = () => restClient(mesh.gatewayUrl, ownerKey);
    beforeAll(async () => {
      viewer = client((await admin.issueApiKey({ tenant: t, roles: ['viewer'] })).key);
      operator = client((await admin.issueApiKey({ tenant: t, roles: ['operator'] })).key);
    });

    it('Budgets.GetBudget and PutBudget answer what REST answers: limits, null for no limit, per-agent caps', async () => {
      const set = await operator.putBudget({ tenant: t, limitUsd: 25, period: 'day', agents: { hello: { limitUsd: 5 }, gated: { limitUsd: null } } });
      expect(set).toMatchObject({ tenantId: t, limitUsd: 25, period: 'day', state: 'ok', spentUsd: 0, reservedUsd: 0, remainingUsd: 25 });
      expect(set.agents.hello).toMatchObject({ limitUsd: 5, remainingUsd: 5 });
      expect(set.agents.gated).toMatchObject({ limitUsd: null, remainingUsd: null });
      expect(Date.parse(set.periodEnd!)).toBeGreaterThan(Date.parse(set.periodStart!));
      const got = await viewer.getBudget({ tenant: t });
      const r = await rest()('GET', `/v1/tenants/${t}/budget`);
      expect(r.status).toBe(200);
      expect(got).toEqual({
        tenantId: r.body.tenantId, limitUsd: r.body.limitUsd, period: r.body.period, spentUsd: r.body.spentUsd, reservedUsd: r.body.reservedUsd,
        remainingUsd: r.body.remainingUsd, state: r.body.state, periodStart: r.body.periodStart, periodEnd: r.body.periodEnd,
        agents: r.body.agents, updatedAt: r.body.updatedAt,
      });
      // 0 stops all spending and is not "no limit"; an unset limit is REST's null
      expect((await owner.putBudget({ tenant: t, limitUsd: 0, period: 'month' })).limitUsd).toBe(0);
      expect((await rest()('GET', `/v1/tenants/${t}/budget`)).body).toMatchObject({ limitUsd: 0, period: 'month' });
      const none = await owner.putBudget({ tenant: t, limitUsd: null, period: 'month' });
      expect(none).toMatchObject({ limitUsd: null, remainingUsd: null, period: 'month', agents: {} });
      expect((await rest()('GET', `/v1/tenants/${t}/budget`)).body).toMatchObject({ limitUsd: null, period: 'month' });
    });

    it('Budgets refuse bad input, roles and tenants as REST does', async () => {
      const noPeriod = await grpcFailure(() => owner.putBudget({ tenant: t, limitUsd: 5, period: undefined as unknown as 'day' }));
      expectCode(noPeriod, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(noPeriod.detail?.fields).toEqual([{ field: 'period', message: 'is required' }]);
      const negative = await grpcFailure(() => owner.putBudget({ tenant: t, limitUsd: -1, period: 'day' }));
      expectCode(negative, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(negative.detail?.fields.map((f) => f.field)).toContain('limit_usd');
      const badAgent = await grpcFailure(() => owner.putBudget({ tenant: t, limitUsd: 5, period: 'day', agents: { 'not an agent!': { limitUsd: 1 } } }));
      expectCode(badAgent, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expectCode(await grpcFailure(() => viewer.putBudget({ tenant: t, limitUsd: 5, period: 'day' })), Status.PERMISSION_DENIED, 'permission_denied', 403);
      expectCode(await grpcFailure(() => owner.getBudget({ tenant: 'Not A Tenant!' })), Status.NOT_FOUND, 'not_found', 404);
      const noTenant = await grpcFailure(() => owner.getBudget({ tenant: '' }));
      expect(noTenant.detail?.fields).toEqual([{ field: 'tenant', message: 'is required' }]);
      expect((await owner.getBudget({ tenant: t })).limitUsd).toBeNull(); // nothing changed
    });

    it('Budgets.GetUsage reports the same usage as REST, and refuses bad ranges naming the field', async () => {
      for (const groupBy of [undefined, 'agent', 'tool'] as const) {
        const u = await viewer.getUsage({ tenant: t, ...(groupBy ? { groupBy } : {}) });
        const r = await rest()('GET', `/v1/tenants/${t}/usage${groupBy ? `?groupBy=${groupBy}` : ''}`);
        expect(r.status).toBe(200);
        expect(u.groupBy).toBe(r.body.groupBy);
        expect(u.from).toBe(r.body.from);
        expect({ usd: u.total.usd, calls: u.totalCalls, inputTokens: u.total.inputTokens, outputTokens: u.total.outputTokens }).toEqual(r.body.totals);
        expect(u.rows.map((x) => ({ key: x.key, usd: x.cost.usd, calls: x.count, inputTokens: x.cost.inputTokens, outputTokens: x.cost.outputTokens }))).toEqual(r.body.groups);
      }
      const from = '2025-01-01T00:00:00.000Z';
      const to = '2025-01-02T00:00:00.000Z';
      expect(await viewer.getUsage({ tenant: t, from, to })).toMatchObject({ from, to, rows: [], totalCalls: 0 });
      const backwards = await grpcFailure(() => viewer.getUsage({ tenant: t, from: to, to: from }));
      expectCode(backwards, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(backwards.detail?.fields).toEqual([{ field: 'from', message: 'must be before to' }]);
      const long = await grpcFailure(() => viewer.getUsage({ tenant: t, from: '2020-01-01T00:00:00Z', to: '2025-01-01T00:00:00Z' }));
      expectCode(long, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(long.detail?.fields.map((f) => f.field)).toEqual(['to']);
      // an enum value this server does not know (a newer client's) is refused, naming the field
      const unknownGroup = await grpcFailure(() => viewer.call('agentmesh.v1.Budgets', 'GetUsage', { tenant: t, group_by: 9 }));
      expectCode(unknownGroup, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(unknownGroup.detail?.fields.map((f) => f.field)).toEqual(['group_by']);
    });

    it('Credentials.RevokeCredential revokes as REST DELETE does; unknown names are NOT_FOUND', async () => {
      await owner.putCredential({ tenant: t, name: 'short-lived', kind: 'bearer', secret: 'grpc-revoke-secret', allowedTools: ['echo'] });
      expectCode(await grpcFailure(() => viewer.revokeCredential({ tenant: t, name: 'short-lived' })), Status.PERMISSION_DENIED, 'permission_denied', 403);
      expect(await owner.revokeCredential({ tenant: t, name: 'short-lived' })).toEqual({ name: 'short-lived' });
      expect((await owner.listCredentials({ tenant: t })).map((c) => c.name)).not.toContain('short-lived');
      expectCode(await grpcFailure(() => owner.revokeCredential({ tenant: t, name: 'never-stored' })), Status.NOT_FOUND, 'not_found', 404);
      expectCode(await grpcFailure(() => owner.revokeCredential({ tenant: t, name: 'bad/name' })), Status.NOT_FOUND, 'not_found', 404);
      const noName = await grpcFailure(() => owner.revokeCredential({ tenant: t, name: '' }));
      expectCode(noName, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(noName.detail?.fields).toEqual([{ field: 'name', message: 'is required' }]);
    });

    it('Policies.GetPolicy and PutPolicy read and replace the rules as REST does, with compare-and-set and the same refusals', async () => {
      const before = await viewer.getPolicy({ tenant: t });
      expect(before.tenant).toBe(t);
      expect(before.builtin.length).toBeGreaterThan(0);
      const r = await rest()('GET', `/v1/tenants/${t}/policy`);
      expect(before).toEqual({ tenant: t, revision: r.body.revision, rules: r.body.rules, builtin: r.body.builtin });
      const rule = { kind: 'permission', subject: 'developer', operation: 'tools.put', when: 'riskTier=irreversible', effect: 'deny' } as const;
      const put = await owner.putPolicy({ tenant: t, rules: [rule, { kind: 'role', subject: 'key:01J00000000000000000000000', role: 'viewer' }], revision: before.revision });
      expect(put.revision).toBeGreaterThan(before.revision);
      expect(put.rules).toEqual([{ ...rule, access: '*' }, { kind: 'role', subject: 'key:01J00000000000000000000000', role: 'viewer' }]);
      expect((await rest()('GET', `/v1/tenants/${t}/policy`)).body.rules).toEqual(put.rules);
      const dev = client((await admin.issueApiKey({ tenant: t, roles: ['developer'] })).key);
      const denied = await grpcFailure(() => dev.putTool({ tenant: t, name: 'danger', ...ECHO, riskTier: 'irreversible' }));
      expectCode(denied, Status.PERMISSION_DENIED, 'permission_denied', 403);
      expect(denied.detail?.reason).toBe('denied_by_rule');
      const stale = await grpcFailure(() => owner.putPolicy({ tenant: t, rules: [], revision: before.revision }));
      expectCode(stale, Status.ABORTED, 'conflict', 409);
      expect(stale.detail?.reason).toBe('policy_conflict');
      const platform = await grpcFailure(() => owner.putPolicy({ tenant: t, rules: [{ kind: 'permission', subject: 'viewer', operation: 'tenants.create', effect: 'allow' }] }));
      expectCode(platform, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(platform.detail?.fields[0]?.field).toBe('rules[0].operation');
      const noEffect = await grpcFailure(() => owner.putPolicy({ tenant: t, rules: [{ kind: 'permission', subject: 'viewer', operation: 'runs.start' } as never] }));
      expectCode(noEffect, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expectCode(await grpcFailure(() => operator.putPolicy({ tenant: t, rules: [] })), Status.PERMISSION_DENIED, 'permission_denied', 403);
      const cleared = await owner.putPolicy({ tenant: t, rules: [], revision: put.revision });
      expect(cleared.rules).toEqual([]);
      expect((await dev.putTool({ tenant: t, name: 'danger', ...ECHO, riskTier: 'irreversible' })).created).toBe(true);
    });

    it('Sessions.GetSession lists a session\'s runs as REST does; unknown and malformed ids are NOT_FOUND', async () => {
      const ids: string[] = [];
      for (const name of ['Sam', 'Kim']) {
        const { run } = await owner.startRun({ tenant: t, agent: 'hello', input: { name }, sessionId: 'grpc-chat' });
        ids.push(run.id);
        await collect(owner.watchRun({ tenant: t, runId: run.id }));
      }
      await eventually(async () => {
        const x = await viewer.getSession({ tenant: t, sessionId: 'grpc-chat' });
        return x.runs.length === 2 && x.runs.every((r) => r.status === 'completed') ? x : null;
      }, 'the session to show two completed runs');
      // read again: a read that heals a missed end writes it back (updatedAt moves once)
      const s = await viewer.getSession({ tenant: t, sessionId: 'grpc-chat' });
      expect(s.runs.map((r) => r.runId)).toEqual(ids);
      expect(s.runs[1]).toMatchObject({ agent: 'hello', agentVersion: '1', status: 'completed', input: '{"name":"Kim"}', output: '{"text":"HELLO, KIM!"}', error: null });
      const r = await rest()('GET', `/v1/tenants/${t}/sessions/grpc-chat`);
      expect(s).toEqual({ sessionId: r.body.sessionId, tenantId: r.body.tenantId, createdAt: r.body.createdAt, updatedAt: r.body.updatedAt, expiresAt: r.body.expiresAt, runs: r.body.runs });
      expectCode(await grpcFailure(() => viewer.getSession({ tenant: t, sessionId: 'never-used' })), Status.NOT_FOUND, 'not_found', 404);
      expectCode(await grpcFailure(() => viewer.getSession({ tenant: t, sessionId: 'not a session!' })), Status.NOT_FOUND, 'not_found', 404);
      const noId = await grpcFailure(() => viewer.getSession({ tenant: t, sessionId: '' }));
      expectCode(noId, Status.INVALID_ARGUMENT, 'invalid_argument', 400);
      expect(noId.detail?.fields).toEqual([{ field: 'session_id', message: 'is required' }]);
    });

    it('Audit.ListAudit pages through the same hash-chained records as REST, including the gRPC calls above', async () => {
      const records: Awaited<ReturnType<AgentmeshClient['listAudit']>>['records'] = [];
      let after = 0;
      let head: { seq: number; hash: string } | null = null;
      for (;;) {
        const page = await viewer.listAudit({ tenant: t, after, limit: 7 });
        expect(page.tenant).toBe(t);
        records.push(...page.records);
        head = page.head;
        if (page.next === null) break;
        after = page.next;
      }
      expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i + 1));
      expect(head).toEqual({ seq: records.length, hash: records.at(-1)!.hash });
      const stored = (await rest()('GET', `/v1/tenants/${t}/audit?limit=500`)).body.records as StoredAuditRecord[];
      expect(records.map((r) => JSON.parse(r.json))).toEqual(stored);
      for (const r of records) {
        const plain = JSON.parse(r.json) as StoredAuditRecord;
        expect(auditHash(plain)).toBe(r.hash);
        expect({ seq: r.seq, action: r.action, at: r.at, prevHash: r.prevHash, actor: r.actor.id, target: r.target, details: r.details })
          .toEqual({ seq: plain.seq, action: plain.action, at: plain.at, prevHash: plain.prevHash, actor: plain.actor.id, target: plain.target, details: plain.details });
      }
      const actions = records.map((r) => r.action);
      for (const a of ['budget.put', 'credentials.revoke', 'policy.put']) expect([a, actions.includes(a)]).toEqual([a, true]);
      const budget = records.find((r) => r.action === 'budget.put' && r.details?.period === 'day');
      expect(budget?.details).toMatchObject({ limitUsd: 25, period: 'day', agents: { hello: { limitUsd: 5 }, gated: { limitUsd: null } } });
      expect(records.find((r) => r.action === 'credentials.revoke')?.target).toEqual({ type: 'credential', id: 'short-lived' });
      expect(JSON.stringify(records)).not.toContain('grpc-revoke-secret');
      expect((await viewer.listAudit({ tenant: t, after: records.length })).records).toEqual([]);
      const otherId = `grpc-audit-other-${process.pid}`;
      await admin.createTenant({ id: otherId });
      const other = client((await admin.issueApiKey({ tenant: otherId, roles: ['owner'] })).key);
      expectCode(await grpcFailure(() => other.listAudit({ tenant: t })), Status.PERMISSION_DENIED, 'permission_denied', 403);
    });
  });

  it('answers the standard health check and lists its services through reflection, without a key', async () => {
    const anon = client();
    expect(await anon.checkHealth()).toBe('SERVING');
    expect(await anon.checkHealth('agentmesh.v1.Runs')).toBe('SERVING');
    expect(await anon.checkHealth('no.such.Service')).toBe('SERVICE_UNKNOWN');
    const services = await anon.listServices();
    expect(services).toEqual(expect.arrayContaining([
      'agentmesh.v1.Tenants', 'agentmesh.v1.Tools', 'agentmesh.v1.Agents', 'agentmesh.v1.Runs',
      'agentmesh.v1.Approvals', 'agentmesh.v1.Credentials', 'agentmesh.v1.Budgets', 'agentmesh.v1.Audit', 'agentmesh.v1.Policies',
      'agentmesh.v1.Sessions', 'grpc.health.v1.Health',
    ]));
    for (const svc of ['agentmesh.v1.Budgets', 'agentmesh.v1.Audit', 'agentmesh.v1.Policies', 'agentmesh.v1.Sessions']) expect(await anon.checkHealth(svc)).toBe('SERVING');
  });

  // last: it restarts the gateway
  it('ends open WatchRun streams with UNAVAILABLE when the gateway stops; resuming after its restart loses nothing', async () => {
    const log = readFileSync(mesh.logFile('gateway')!, 'utf8');
    expect(log).not.toMatch(/unhandled error in a gRPC call|internal error in a gRPC call/);
    const callsBefore = gate.calls;
    const { run } = await owner.startRun({ tenant: t, agent: 'gated', input: {} });
    const got: RunEvent[] = [];
    const watching = (async () => { for await (const e of owner.watchRun({ tenant: t, runId: run.id })) got.push(e); })();
    await eventually(async () => gate.calls > callsBefore && got.some((e) => e.type === 'tool.called'), 'the run to wait at the gate');
    await mesh.kill('gateway', 'SIGTERM');
    const e = await watching.then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(AgentmeshGrpcError);
    expect((e as AgentmeshGrpcError).grpcCode).toBe(Status.UNAVAILABLE);
    expect((e as AgentmeshGrpcError).message).toMatch(/shutting down/);
    expect(readFileSync(mesh.logFile('gateway')!, 'utf8')).toContain('gRPC API closed');
    gate.release(); // the run goes on without the gateway
    await mesh.restart('gateway');
    const again = client(ownerKey); // a new channel: the old one may be backing off after the restart
    const rest = await collect(again.watchRun({ tenant: t, runId: run.id, afterSeq: got.at(-1)!.seq }));
    const whole = [...got, ...rest];
    expect(whole.at(-1)?.type).toBe('run.completed');
    expect(whole).toEqual(await collect(again.watchRun({ tenant: t, runId: run.id })));
  });
});

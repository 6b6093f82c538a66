import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { status as Status } from '@grpc/grpc-js';
import { jetstreamManager } from '@nats-io/jetstream';
import { auditSubject, STREAMS } from '#libs/contracts';
import { connectNats } from '#libs/messaging';
import { AgentmeshClient } from '#libs/sdk';
import { eventually, followEvents, grpcFailure, newTenant, startTestMesh, waitForRun, type Api, type Mesh, type SseEvent } from './support/harness.js';
import { startEffectServer, type EffectServer } from './support/effect-server.js';

const ECHO = { version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'builtin', name: 'echo' } };
/** How long the `payout-short` agent's approvals wait (agent limit approvalTimeoutSeconds). */
const SHORT_TIMEOUT_S = 4;

interface ApprovalBody {
  id: string; runId: string; step: number; tool: string; version: string; args: Record<string, unknown>; argsHash: string;
  riskTier: string; status: string; createdAt: string; expiresAt: string; decidedAt: string | null; decidedBy: string | null; reason: string | null;
}

describe('human approval of irreversible tool calls', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let fx: EffectServer;
  let t: string;
  let owner: Api;
  let ownerKey: string;
  let approver: { api: Api; key: string; id: string };
  let viewer: Api;
  let operator: Api;
  let foreign: { id: string; approver: Api };
  const grpcClients: AgentmeshClient[] = [];
  const grpc = (key: string) => {
    const c = new AgentmeshClient({ address: `127.0.0.1:${mesh.grpcPort}`, apiKey: key });
    grpcClients.push(c);
    return c;
  };

  beforeAll(async () => {
    mesh = await startTestMesh({ AGENTMESH_ACK_WAIT: '2s' });
    fx = await startEffectServer();
    const tenant = await newTenant(mesh, 'apr');
    t = tenant.id; owner = tenant.owner; ownerKey = tenant.ownerKey;
    approver = await tenant.keyFor(['approver']);
    viewer = (await tenant.keyFor(['viewer'])).api;
    operator = (await tenant.keyFor(['operator'])).api;
    const other = await newTenant(mesh, 'apr-other');
    foreign = { id: other.id, approver: (await other.keyFor(['approver'])).api };

    const wire = {
      version: '1', riskTier: 'irreversible', inputSchema: { type: 'object', required: ['account', 'amount'] }, timeoutMs: 10_000,
      egress: [`127.0.0.1:${fx.port}`], transport: { kind: 'http', url: `${fx.url}/wire` },
    };
    expect((await owner('PUT', `/v1/tenants/${t}/tools/wire`, wire)).status).toBe(201);
    expect((await owner('PUT', `/v1/tenants/${t}/tools/echo`, ECHO)).status).toBe(201);
    const steps = [
      { id: 'check', tool: 'echo', args: { account: '{{input.account}}' } },
      { id: 'pay', tool: 'wire', args: { account: '{{steps.check.result.account}}', amount: '{{input.amount}}' } },
    ];
    expect((await owner('PUT', `/v1/tenants/${t}/agents/payout`, { version: '1', planner: 'graph', tools: ['echo', 'wire'], steps, limits: { approvalTimeoutSeconds: 60 } })).status).toBe(201);
    expect((await owner('PUT', `/v1/tenants/${t}/agents/payout-short`, { version: '1', planner: 'graph', tools: ['echo', 'wire'], steps, limits: { approvalTimeoutSeconds: SHORT_TIMEOUT_S } })).status).toBe(201);
  });
  afterAll(async () => {
    for (const c of grpcClients) c.close();
    await fx?.close();
    await mesh?.cleanup();
  });

  async function startPayout(agent: string, amount: number): Promise<string> {
    const r = await owner('POST', `/v1/tenants/${t}/runs`, { agent, input: { account: 'ACC-7', amount } });
    expect(r.status).toBe(201);
    return r.body.id as string;
  }

  /** Waits until the run pauses and its approval is listed as pending. */
  async function pendingApprovalOf(runId: string): Promise<ApprovalBody> {
    return eventually(async () => {
      const run = await owner('GET', `/v1/tenants/${t}/runs/${runId}`);
      if (run.body.status !== 'waiting_approval') return null;
      const list = await viewer('GET', `/v1/tenants/${t}/approvals?status=pending`);
      return (list.body.approvals as ApprovalBody[]).find((a) => a.runId === runId) ?? null;
    }, `run ${runId} to wait for approval`);
  }

  async function journal(runId: string): Promise<SseEvent[]> {
    const events: SseEvent[] = [];
    await followEvents(mesh.gatewayUrl, ownerKey, `/v1/tenants/${t}/runs/${runId}/events`, (e) => events.push(e));
    return events;
  }

  const callsOf = (runId: string) => [...fx.calls.entries()].filter(([k]) => k.startsWith(`${runId}:`));

  it('pauses the irreversible call, and after an approval runs it exactly once under the call key it was approved for', async () => {
    const runId = await startPayout('payout', 250);
    const a = await pendingApprovalOf(runId);
    expect(a).toMatchObject({
      runId, step: 2, tool: 'wire', version: '1', args: { account: 'ACC-7', amount: 250 }, riskTier: 'irreversible',
      status: 'pending', decidedAt: null, decidedBy: null,
    });
    expect(a.id).toMatch(/^apr_[0-9a-f]{32}$/);
    expect(a.argsHash).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(a.expiresAt) - Date.parse(a.createdAt)).toBe(60_000);
    expect(callsOf(runId)).toEqual([]); // nothing called while it waits
    await eventually(async () => {
      const text = await (await fetch(`http://127.0.0.1:${mesh.ports.orchestrator}/metrics`)).text();
      return text.split('\n').some((l) => l.startsWith('agentmesh_approvals_pending{') && l.includes(`tenant="${t}"`) && l.endsWith(' 1'));
    }, 'agentmesh_approvals_pending to count the approval');

    const res = await approver.api('POST', `/v1/tenants/${t}/approvals/${a.id}`, { decision: 'approve', reason: 'checked with finance' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: a.id, status: 'approved', decidedBy: approver.id, reason: 'checked with finance' });

    const run = await waitForRun(owner, t, runId);
    expect(run).toMatchObject({ status: 'completed', steps: 2 });
    const key = `${runId}:2:0`;
    expect(fx.effects.get(key)).toBe(1);
    expect(callsOf(runId).map(([k]) => k).filter((k) => k.endsWith(':2:0'))).toEqual([key]);
    const events = await journal(runId);
    const types = events.map((e) => e.event);
    expect(types.slice(types.indexOf('approval.requested'))).toEqual([
      'approval.requested', 'approval.granted', 'step.started', 'tool.called', 'tool.completed', 'run.completed',
    ]);
    const requested = events.find((e) => e.event === 'approval.requested')!.data;
    const called = events.find((e) => e.event === 'tool.called' && e.data.step === 2)!.data;
    expect(requested.data).toMatchObject({ approvalId: a.id, callKey: key, argsHash: a.argsHash, expiresAt: a.expiresAt });
    expect(called.data).toMatchObject({ callKey: key, tool: 'wire', version: '1' });
    expect(events.find((e) => e.event === 'approval.granted')!.data.data).toEqual({ approvalId: a.id, by: approver.id, reason: 'checked with finance' });
    // the decision is on the tenant's audit trail, with who decided and the binding (never the args)
    const nc = await connectNats(mesh.natsUrl, 'approvals-e2e');
    try {
      const last = await (await jetstreamManager(nc)).direct.getMessage(STREAMS.audit.name, { last_by_subj: auditSubject(t) });
      expect(last?.json()).toMatchObject({
        action: 'approvals.decide', actor: { kind: 'api_key', id: `key:${approver.id}` }, target: { type: 'approval', id: a.id },
        details: { decision: 'approve', runId, tool: 'wire@1', argsHash: a.argsHash, riskTier: 'irreversible', reason: 'checked with finance' },
      });
    } finally {
      await nc.close();
    }

    // a second decision on a decided approval is a conflict, whoever asks
    const again = await approver.api('POST', `/v1/tenants/${t}/approvals/${a.id}`, { decision: 'deny' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'conflict', reason: 'approval_decided' });
    expect((await owner('POST', `/v1/tenants/${t}/approvals/${a.id}`, { decision: 'approve' })).status).toBe(409);
    const approved = await viewer('GET', `/v1/tenants/${t}/approvals?status=approved`);
    expect((approved.body.approvals as ApprovalBody[]).map((x) => x.id)).toContain(a.id);
    expect((await viewer('GET', `/v1/tenants/${t}/approvals?status=pending`)).body.approvals.find((x: ApprovalBody) => x.id === a.id)).toBeUndefined();
  });

  it('lets only approvers and owners of the same tenant decide; unknown ids are 404 and bad bodies 400', async () => {
    const runId = await startPayout('payout', 99);
    const a = await pendingApprovalOf(runId);
    const path = `/v1/tenants/${t}/approvals/${a.id}`;
    for (const [who, api] of [['viewer', viewer], ['operator', operator]] as const) {
      const r = await api('POST', path, { decision: 'approve' });
      expect({ who, status: r.status, code: r.body.code }).toEqual({ who, status: 403, code: 'permission_denied' });
    }
    // another tenant's approver: refused on this tenant's path, and the id means nothing in its own tenant
    expect([403, 404]).toContain((await foreign.approver('POST', path, { decision: 'approve' })).status);
    expect((await foreign.approver('GET', `/v1/tenants/${t}/approvals`)).status).toBe(403);
    expect((await foreign.approver('POST', `/v1/tenants/${foreign.id}/approvals/${a.id}`, { decision: 'approve' })).status).toBe(404);
    expect((await foreign.approver('GET', `/v1/tenants/${foreign.id}/approvals?status=pending`)).body.approvals).toEqual([]);
    expect((await approver.api('POST', `/v1/tenants/${t}/approvals/apr_${'0'.repeat(32)}`, { decision: 'approve' })).status).toBe(404);
    expect((await approver.api('POST', `/v1/tenants/${t}/approvals/nope`, { decision: 'approve' })).status).toBe(404);
    const bad = await approver.api('POST', path, { decision: 'maybe' });
    expect(bad.status).toBe(400);
    expect((await approver.api('POST', path, { decision: 'approve', riskTier: 'read' })).status).toBe(400);
    expect((await viewer('GET', `/v1/tenants/${t}/approvals?status=unknown`)).status).toBe(400);
    // still pending after all that; nothing ran
    expect((await owner('GET', `/v1/tenants/${t}/runs/${runId}`)).body.status).toBe('waiting_approval');
    expect(callsOf(runId)).toEqual([]);

    // the owner may decide (policy catalogue: approvals.decide → owner, approver); here over gRPC as a denial
    const crossTenant = await grpcFailure(() => grpc(ownerKey).decideApproval({ tenant: foreign.id, approvalId: a.id, decision: 'deny' }));
    expect(crossTenant.grpcCode).toBe(Status.PERMISSION_DENIED);
    const listed = await grpc(approver.key).listApprovals({ tenant: t, status: 'pending' });
    expect(listed.find((x) => x.id === a.id)).toMatchObject({ runId, tool: 'wire', version: '1', riskTier: 'irreversible', status: 'pending', args: { account: 'ACC-7', amount: 99 } });
    const denied = await grpc(ownerKey).decideApproval({ tenant: t, approvalId: a.id, decision: 'deny', reason: 'duplicate payout' });
    expect(denied).toMatchObject({ id: a.id, status: 'denied', reason: 'duplicate payout' });
    const twice = await grpcFailure(() => grpc(approver.key).decideApproval({ tenant: t, approvalId: a.id, decision: 'approve' }));
    expect(twice.grpcCode).toBe(Status.ABORTED);
    const run = await waitForRun(owner, t, runId);
    expect(run).toMatchObject({ status: 'failed', error: { code: 'approval_denied' } });
  });

  it('fails the run approval_denied on a denial and never calls the tool', async () => {
    const runId = await startPayout('payout', 1_000_000);
    const a = await pendingApprovalOf(runId);
    const res = await approver.api('POST', `/v1/tenants/${t}/approvals/${a.id}`, { decision: 'deny', reason: 'amount too high' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'denied', decidedBy: approver.id, reason: 'amount too high' });
    const run = await waitForRun(owner, t, runId);
    expect(run).toMatchObject({ status: 'failed', steps: 1, error: { code: 'approval_denied' } });
    expect(run.error.message).toContain('amount too high');
    expect(callsOf(runId)).toEqual([]);
    const types = (await journal(runId)).map((e) => e.event);
    expect(types.slice(-3)).toEqual(['approval.requested', 'approval.denied', 'run.failed']);
    expect((await approver.api('POST', `/v1/tenants/${t}/approvals/${a.id}`, { decision: 'approve' })).status).toBe(409);
  });

  it('expires an undecided approval after its timeout even across an orchestrator crash, then refuses late decisions with 409', async () => {
    const runId = await startPayout('payout-short', 5);
    const a = await pendingApprovalOf(runId);
    expect(Date.parse(a.expiresAt) - Date.parse(a.createdAt)).toBe(SHORT_TIMEOUT_S * 1000);
    await mesh.kill('orchestrator', 'SIGKILL');
    // past the deadline while nobody is there to expire it: a decision now is already too late
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(a.expiresAt) - Date.now()) + 300));
    const late = await approver.api('POST', `/v1/tenants/${t}/approvals/${a.id}`, { decision: 'approve' });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ code: 'conflict', reason: 'approval_expired' });
    await mesh.restart('orchestrator');
    const run = await waitForRun(owner, t, runId, 30_000);
    expect(run).toMatchObject({ status: 'failed', steps: 1, error: { code: 'approval_expired' } });
    expect(callsOf(runId)).toEqual([]);
    const types = (await journal(runId)).map((e) => e.event);
    expect(types.slice(-3)).toEqual(['approval.requested', 'approval.expired', 'run.failed']);
    const expired = await eventually(async () => {
      const list = await viewer('GET', `/v1/tenants/${t}/approvals?status=expired`);
      return (list.body.approvals as ApprovalBody[]).find((x) => x.id === a.id) ?? null;
    }, 'the approval to show as expired');
    expect(expired).toMatchObject({ status: 'expired', decidedBy: null });
    const after = await approver.api('POST', `/v1/tenants/${t}/approvals/${a.id}`, { decision: 'deny' });
    expect(after.status).toBe(409);
    expect(after.body).toMatchObject({ reason: 'approval_expired' });
  });

  it('expires on time with the orchestrator up (the timer fires by itself), and a cancel while waiting ends the run at once', async () => {
    const runId = await startPayout('payout-short', 6);
    const a = await pendingApprovalOf(runId);
    const run = await waitForRun(owner, t, runId, 20_000);
    expect(run).toMatchObject({ status: 'failed', error: { code: 'approval_expired' } });
    expect(Date.parse(run.updatedAt)).toBeGreaterThanOrEqual(Date.parse(a.expiresAt));

    const cancelled = await startPayout('payout', 7);
    const b = await pendingApprovalOf(cancelled);
    expect((await owner('POST', `/v1/tenants/${t}/runs/${cancelled}/cancel`, {})).status).toBe(202);
    expect(await waitForRun(owner, t, cancelled)).toMatchObject({ status: 'cancelled' });
    const r = await eventually(async () => {
      const res = await approver.api('POST', `/v1/tenants/${t}/approvals/${b.id}`, { decision: 'approve' });
      return res.status === 409 ? res : null;
    }, 'the approval of the cancelled run to be closed');
    expect(r.body.reason).toBe('approval_expired');
    expect(callsOf(cancelled)).toEqual([]);
  });
  it("pauses write calls for approval when the tenant's policy denies tools.run for riskTier=write; other tenants and later runs without the rule run them unattended", async () => {
    const update = {
      version: '1', riskTier: 'write', inputSchema: { type: 'object' }, timeoutMs: 10_000,
      egress: [`127.0.0.1:${fx.port}`], transport: { kind: 'http', url: `${fx.url}/update` },
    };
    const steps = [
      { id: 'check', tool: 'echo', args: { account: '{{input.account}}' } },
      { id: 'save', tool: 'update', args: { account: '{{steps.check.result.account}}' } },
    ];
    const setUp = async (prefix: string) => {
      const x = await newTenant(mesh, prefix);
      expect((await x.owner('PUT', `/v1/tenants/${x.id}/tools/echo`, ECHO)).status).toBe(201);
      expect((await x.owner('PUT', `/v1/tenants/${x.id}/tools/update`, update)).status).toBe(201);
      expect((await x.owner('PUT', `/v1/tenants/${x.id}/agents/saver`, { version: '1', planner: 'graph', tools: ['echo', 'update'], steps, limits: {} })).status).toBe(201);
      return x;
    };
    const guarded = await setUp('apr-pol');
    const free = await setUp('apr-free');
    const guardedApprover = await guarded.keyFor(['approver']);
    const start = async (x: { id: string; owner: Api }) => {
      const r = await x.owner('POST', `/v1/tenants/${x.id}/runs`, { agent: 'saver', input: { account: 'ACC-9' } });
      expect(r.status).toBe(201);
      return r.body.id as string;
    };
    const eventsOf = async (x: { id: string; ownerKey: string }, runId: string) => {
      const events: SseEvent[] = [];
      await followEvents(mesh.gatewayUrl, x.ownerKey, `/v1/tenants/${x.id}/runs/${runId}/events`, (e) => events.push(e));
      return events;
    };
    const deny = { kind: 'permission', subject: '*', operation: 'tools.run', when: 'riskTier=write', effect: 'deny' };
    const put = await guarded.owner('PUT', `/v1/tenants/${guarded.id}/policy`, { rules: [deny] });
    expect(put.status).toBe(200);
    expect(put.body.rules).toEqual([{ ...deny, access: '*' }]);
    expect(put.body.builtin).toContainEqual({ kind: 'permission', subject: '*', operation: 'tools.run', access: '*', when: 'riskTier=read|write', effect: 'allow' });

    // the guarded tenant: the write call waits for an approver, then runs exactly once
    const paused = await start(guarded);
    const a = await eventually(async () => {
      const run = await guarded.owner('GET', `/v1/tenants/${guarded.id}/runs/${paused}`);
      if (run.body.status !== 'waiting_approval') return null;
      const list = await guarded.owner('GET', `/v1/tenants/${guarded.id}/approvals?status=pending`);
      return (list.body.approvals as ApprovalBody[]).find((x) => x.runId === paused) ?? null;
    }, `run ${paused} to wait for approval`);
    expect(a).toMatchObject({ step: 2, tool: 'update', version: '1', riskTier: 'write', status: 'pending' });
    expect(callsOf(paused)).toEqual([]);
    const ok = await guardedApprover.api('POST', `/v1/tenants/${guarded.id}/approvals/${a.id}`, { decision: 'approve' });
    expect(ok.status).toBe(200);
    expect(await waitForRun(guarded.owner, guarded.id, paused)).toMatchObject({ status: 'completed', steps: 2 });
    expect(fx.effects.get(`${paused}:2:0`)).toBe(1);
    const pausedEvents = await eventsOf(guarded, paused);
    // the verdict is recorded in run.started: recovery and replay never ask the policy again
    expect(pausedEvents.find((e) => e.event === 'run.started')!.data.data.tools).toMatchObject({
      update: { name: 'update', riskTier: 'write', requireApproval: true }, echo: { name: 'echo', riskTier: 'read' },
    });
    expect(pausedEvents.find((e) => e.event === 'run.started')!.data.data.tools.echo.requireApproval).toBeUndefined();
    expect(pausedEvents.map((e) => e.event).filter((x) => x.startsWith('approval.'))).toEqual(['approval.requested', 'approval.granted']);

    // another tenant, no rule: straight through
    const straight = await start(free);
    expect(await waitForRun(free.owner, free.id, straight)).toMatchObject({ status: 'completed', steps: 2 });
    expect(fx.effects.get(`${straight}:2:0`)).toBe(1);
    const straightEvents = await eventsOf(free, straight);
    expect(straightEvents.some((e) => e.event.startsWith('approval.'))).toBe(false);
    expect(straightEvents.find((e) => e.event === 'run.started')!.data.data.tools.update.requireApproval).toBeUndefined();

    // the rule removed: the guarded tenant's new runs call write tools unattended again
    expect((await guarded.owner('PUT', `/v1/tenants/${guarded.id}/policy`, { rules: [] })).status).toBe(200);
    const after = await start(guarded);
    expect(await waitForRun(guarded.owner, guarded.id, after)).toMatchObject({ status: 'completed', steps: 2 });
    expect(fx.effects.get(`${after}:2:0`)).toBe(1);
    expect((await eventsOf(guarded, after)).some((e) => e.event.startsWith('approval.'))).toBe(false);
  });
});

import { describe, expect, it } from '@jest/globals';
import {
  approvalArgsHash, callKey, DEFAULT_APPROVAL_TIMEOUT_SECONDS,
  type AgentSpec, type AnyJournalEvent, type AnyNewJournalEvent, type JsonValue, type PinnedTool,
} from '#libs/contracts';
import {
  approvalDecisionEvent, approvalExpiredEvent, approvalIdOf, cancelEvent, createdEvent, decide, requiresApproval, toolOutcomeEvent,
  toolsResolvedEvent, type DecideOptions, type Effect,
} from './decide.js';
import { initialState, JournalDivergenceError, reduce, type RunState } from './state.js';
import { replayJournal } from './replay.js';

const T0 = '2026-01-01T00:00:00.000Z';
const OPTS: DecideOptions = { now: T0, globalMaxSteps: 200, redispatch: false };
const at = (seconds: number) => new Date(Date.parse(T0) + seconds * 1000).toISOString();

const TOOLS: Record<string, PinnedTool> = {
  lookup: { name: 'lookup', version: '1', riskTier: 'read' },
  update: { name: 'update', version: '2', riskTier: 'write' },
  wire: { name: 'wire', version: '3', riskTier: 'irreversible' },
};

const agent = (steps: Array<{ tool: string; args: Record<string, JsonValue> }>, limits: AgentSpec['limits'] = {}): AgentSpec => ({
  name: 'payout', version: '1', planner: 'graph', tools: Object.keys(TOOLS), limits,
  steps: steps.map((s, i) => ({ id: `s${i + 1}`, ...s })),
});

const PAYOUT = agent([
  { tool: 'lookup', args: { account: '{{input.account}}' } },
  { tool: 'wire', args: { account: '{{input.account}}', amount: '{{input.amount}}' } },
], { approvalTimeoutSeconds: 60 });

/** An in-memory run with a journal; the clock is whatever each call says. */
class Run {
  s: RunState = initialState('acme', 'run_01HZZZZZZZZZZZZZZZZZZZZZZZ');
  journal: AnyJournalEvent[] = [];
  constructor(spec: AgentSpec = PAYOUT, input: JsonValue = { account: 'ACC-1', amount: 250 }, sessionId?: string, tools: Record<string, PinnedTool> = TOOLS) {
    this.append(createdEvent(this.s, T0, { tenantId: 'acme', runId: this.s.runId, agent: spec, input, ...(sessionId ? { sessionId } : {}) }));
    this.append(toolsResolvedEvent(this.s, T0, tools));
  }
  append(e: AnyNewJournalEvent | null) {
    if (!e) return;
    const full = { ...e, seq: this.journal.length + 1 } as AnyJournalEvent;
    this.journal.push(full);
    this.s = reduce(this.s, full);
  }
  /** Applies one decision at `now`; returns its effects. */
  step(now = T0, redispatch = false): Effect[] {
    const d = decide(this.s, { ...OPTS, now, redispatch });
    d.events.forEach((e) => this.append(e));
    return d.effects;
  }
  complete(result: JsonValue, now = T0) {
    const f = this.s.inFlight!;
    this.append(toolOutcomeEvent(this.s, now, { tenantId: 'acme', runId: this.s.runId, step: f.step, callKey: f.callKey, durationMs: 1, ok: true, result }));
  }
  decideApproval(decision: 'approve' | 'deny', now: string, reason?: string) {
    const a = this.s.approval!;
    const ev = approvalDecisionEvent(this.s, now, { tenantId: 'acme', runId: this.s.runId, approvalId: a.approvalId, decision, by: 'key-approver', ...(reason ? { reason } : {}) });
    this.append(ev);
    return ev;
  }
  /** Runs to the approval request of the wire step. */
  toApproval(): Effect[] {
    this.step();
    this.complete({ owner: 'Ada' });
    return this.step(at(1));
  }
}

describe('approvals in the run engine', () => {
  it('pauses an irreversible call: approval.requested bound to the tool version and args, expiring after the agent timeout', () => {
    const r = new Run();
    const effects = r.toApproval();
    const requested = r.journal[r.journal.length - 1];
    const key = callKey(r.s.runId, 2);
    const args = { account: 'ACC-1', amount: 250 };
    const argsHash = approvalArgsHash(TOOLS.wire, args);
    expect(requested).toMatchObject({
      type: 'approval.requested', step: 2, at: at(1),
      data: { approvalId: approvalIdOf(key, argsHash), callKey: key, tool: 'wire', version: '3', args, argsHash, riskTier: 'irreversible', expiresAt: at(61) },
    });
    expect(r.s.status).toBe('waiting_approval');
    expect(r.s.step).toBe(1); // the step has not started
    expect(r.s.inFlight).toBeNull();
    expect(effects).toEqual([{ kind: 'schedule_approval_timeout', timer: { tenantId: 'acme', runId: r.s.runId, approvalId: approvalIdOf(key, argsHash), expiresAt: at(61) } }]);
    // nothing happens while it waits; a recovering worker only arms the timer again
    expect(decide(r.s, { ...OPTS, now: at(5) })).toEqual({ events: [], effects: [] });
    expect(decide(r.s, { ...OPTS, now: at(5), redispatch: true })).toEqual({ events: [], effects });
  });

  it('hashes the exact tool name@version and canonical args: key order does not matter, any other version or value does', () => {
    const h = approvalArgsHash(TOOLS.wire, { amount: 250, account: 'ACC-1' });
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(approvalArgsHash(TOOLS.wire, { account: 'ACC-1', amount: 250 })).toBe(h);
    expect(approvalArgsHash({ ...TOOLS.wire, version: '4' }, { account: 'ACC-1', amount: 250 })).not.toBe(h);
    expect(approvalArgsHash(TOOLS.wire, { account: 'ACC-1', amount: 251 })).not.toBe(h);
    expect(approvalArgsHash({ ...TOOLS.wire, name: 'wire2' }, { account: 'ACC-1', amount: 250 })).not.toBe(h);
  });

  it('on approval.granted starts the step with the call key it was approved under and dispatches it with the binding', () => {
    const r = new Run(PAYOUT, { account: 'ACC-1', amount: 250 }, 'sess-1');
    r.toApproval();
    const a = r.s.approval!;
    expect(r.decideApproval('approve', at(30), 'looks right')?.type).toBe('approval.granted');
    expect(r.s).toMatchObject({ status: 'running', approval: { status: 'approved', by: 'key-approver', reason: 'looks right', decidedAt: at(30) } });
    const effects = r.step(at(31));
    expect(r.journal.slice(-3).map((e) => e.type)).toEqual(['approval.granted', 'step.started', 'tool.called']);
    expect(r.journal[r.journal.length - 1].data).toMatchObject({ callKey: a.callKey, tool: 'wire', version: '3', riskTier: 'irreversible' });
    expect(effects).toEqual([{
      kind: 'dispatch_tool',
      command: {
        tenantId: 'acme', runId: r.s.runId, step: 2, callKey: a.callKey, tool: TOOLS.wire, args: a.args, sessionId: 'sess-1',
        approval: { approvalId: a.approvalId, argsHash: a.argsHash },
      },
    }]);
    r.complete({ wired: true }, at(32));
    r.step(at(33));
    expect(r.s.status).toBe('completed');
  });

  it('on approval.denied fails the run approval_denied and never starts the call', () => {
    const r = new Run();
    r.toApproval();
    expect(r.decideApproval('deny', at(10), 'wrong account')?.type).toBe('approval.denied');
    expect(r.step(at(11))).toEqual([]);
    expect(r.s.status).toBe('failed');
    expect(r.s.error).toEqual({ code: 'approval_denied', message: 'the call of wire@3 (step 2) was denied: wrong account' });
    expect(r.journal.filter((e) => e.type === 'step.started')).toHaveLength(1);
  });

  it('expires at expiresAt: approval.expired, then the run fails approval_expired (no decision means deny)', () => {
    const r = new Run();
    r.toApproval();
    const { approvalId } = r.s.approval!;
    expect(approvalExpiredEvent(r.s, at(60), approvalId)).toBeNull(); // not yet due
    expect(approvalExpiredEvent(r.s, at(61), 'apr_other')).toBeNull();
    r.append(approvalExpiredEvent(r.s, at(61), approvalId));
    expect(r.s.approval).toMatchObject({ status: 'expired', decidedAt: at(61) });
    r.step(at(61));
    expect(r.s.status).toBe('failed');
    expect(r.s.error?.code).toBe('approval_expired');
    expect(r.journal.slice(-2).map((e) => e.type)).toEqual(['approval.expired', 'run.failed']);
  });

  it('lets exactly one of a decision and the expiry win: a decision at or after expiresAt records the expiry, a late one records nothing', () => {
    const late = new Run();
    late.toApproval();
    expect(late.decideApproval('approve', at(61))?.type).toBe('approval.expired');
    expect(late.s.approval?.status).toBe('expired');
    const cmd = { tenantId: 'acme', runId: late.s.runId, approvalId: late.s.approval!.approvalId, decision: 'approve' as const, by: 'k' };
    expect(approvalDecisionEvent(late.s, at(62), cmd)).toBeNull();

    const first = new Run();
    first.toApproval();
    const id = first.s.approval!.approvalId;
    first.decideApproval('approve', at(59));
    expect(approvalExpiredEvent(first.s, at(61), id)).toBeNull(); // the timer finds nothing to expire
    expect(approvalDecisionEvent(first.s, at(59), { ...cmd, runId: first.s.runId, approvalId: id, decision: 'deny' })).toBeNull(); // nor a second decision
    expect(() => first.append({ ...first.journal[first.journal.length - 1], data: { approvalId: id } } as AnyNewJournalEvent)).toThrow(JournalDivergenceError);
  });

  it('uses DEFAULT_APPROVAL_TIMEOUT_SECONDS (1 h) when the agent sets no timeout', () => {
    const r = new Run(agent([{ tool: 'wire', args: { n: 1 } }]));
    r.step(at(0));
    expect(DEFAULT_APPROVAL_TIMEOUT_SECONDS).toBe(3600);
    expect(r.s.approval?.expiresAt).toBe(at(3600));
  });

  it('runs read calls, and write calls unless the agent lists write in requireApprovalFor', () => {
    const steps: Array<{ tool: string; args: Record<string, JsonValue> }> = [{ tool: 'lookup', args: { q: 1 } }, { tool: 'update', args: { v: 2 } }];
    const plain = new Run(agent(steps));
    plain.step(); plain.complete({}); plain.step(); plain.complete({}); plain.step();
    expect(plain.s.status).toBe('completed');
    expect(plain.journal.some((e) => e.type.startsWith('approval.'))).toBe(false);

    const guarded = new Run(agent(steps, { requireApprovalFor: ['write'] }));
    guarded.step(); guarded.complete({});
    guarded.step();
    expect(guarded.s.status).toBe('waiting_approval');
    expect(guarded.s.approval).toMatchObject({ tool: 'update', riskTier: 'write', step: 2 });
    expect(requiresApproval(agent([], { requireApprovalFor: ['write'] }), 'read')).toBe(false);
    expect(requiresApproval(agent([], { requireApprovalFor: [] }), 'irreversible')).toBe(true);
  });

  it("pauses a write call whose pinned tool records the tenant policy's requireApproval, runs it once approved, and replays without asking the policy", () => {
    const steps: Array<{ tool: string; args: Record<string, JsonValue> }> = [{ tool: 'lookup', args: { q: 1 } }, { tool: 'update', args: { v: 2 } }];
    const tools = { ...TOOLS, update: { ...TOOLS.update, requireApproval: true } };
    const r = new Run(agent(steps), { account: 'ACC-1' }, undefined, tools);
    r.step(); r.complete({});
    const effects = r.step(at(1));
    expect(r.s.status).toBe('waiting_approval');
    expect(r.s.approval).toMatchObject({ tool: 'update', version: '2', riskTier: 'write', step: 2, status: 'pending' });
    expect(effects.map((e) => e.kind)).toEqual(['schedule_approval_timeout']);
    expect(r.journal.some((e) => e.type === 'tool.called' && e.step === 2)).toBe(false);

    r.decideApproval('approve', at(2));
    const dispatched = r.step(at(3));
    expect(dispatched).toMatchObject([{ kind: 'dispatch_tool', command: { step: 2, tool: { name: 'update', requireApproval: true }, approval: { approvalId: r.s.approval!.approvalId } } }]);
    r.complete({ updated: true }, at(4));
    r.step(at(5));
    expect(r.s.status).toBe('completed');
    expect(r.journal.filter((e) => e.type === 'tool.called').map((e) => e.step)).toEqual([1, 2]);
    // the verdict is in run.started: replay decides the same from the journal alone
    expect(replayJournal(r.journal, { globalMaxSteps: 200 })).toMatchObject({ ok: true });

    // the same tool without the recorded flag runs unattended
    const plain = new Run(agent(steps), { account: 'ACC-1' });
    plain.step(); plain.complete({}); plain.step();
    expect(plain.s.status).toBe('running');
    expect(plain.s.inFlight).toMatchObject({ step: 2 });
  });

  it('cancels a run waiting for approval at once, and the approval can no longer be decided', () => {
    const r = new Run();
    r.toApproval();
    const id = r.s.approval!.approvalId;
    r.append(cancelEvent(r.s, at(5), 'not today'));
    expect(r.s.status).toBe('cancelled');
    expect(approvalDecisionEvent(r.s, at(6), { tenantId: 'acme', runId: r.s.runId, approvalId: id, decision: 'approve', by: 'k' })).toBeNull();
    expect(approvalExpiredEvent(r.s, at(100), id)).toBeNull();
  });

  it('asks again when the call about to be made is not the approved one (another binding)', () => {
    const r = new Run();
    r.toApproval();
    r.decideApproval('approve', at(2));
    // a different binding under the same call key: the grant does not cover it
    r.s = { ...r.s, approval: { ...r.s.approval!, argsHash: 'f'.repeat(64) } };
    const effects = r.step(at(3));
    expect(r.s.status).toBe('waiting_approval');
    expect(r.journal[r.journal.length - 1].type).toBe('approval.requested');
    expect(effects[0].kind).toBe('schedule_approval_timeout');
  });

  it('refuses a decision event for an approval that is not pending (a corrupted journal)', () => {
    const r = new Run();
    r.step();
    expect(() => r.append({ runId: r.s.runId, tenantId: 'acme', type: 'approval.granted', at: T0, step: 2, data: { approvalId: 'apr_x', by: 'k' } })).toThrow(JournalDivergenceError);
  });

  it.each([
    ['granted', (r: Run) => { r.decideApproval('approve', at(20)); r.step(at(21)); r.complete({ wired: true }, at(22)); r.step(at(23)); }, 'completed'],
    ['denied', (r: Run) => { r.decideApproval('deny', at(20)); r.step(at(21)); }, 'failed'],
    ['expired', (r: Run) => { r.append(approvalExpiredEvent(r.s, at(61), r.s.approval!.approvalId)); r.step(at(61)); }, 'failed'],
  ])('replays a journal with an approval %s without divergence', (_name, finish, status) => {
    const r = new Run();
    r.toApproval();
    finish(r);
    const report = replayJournal(r.journal, { globalMaxSteps: 200 });
    expect(report).toMatchObject({ ok: true, state: { status } });
    // the decided approval.requested is checked, expiresAt included
    const tampered = r.journal.map((e) => (e.type === 'approval.requested' ? { ...e, data: { ...e.data, expiresAt: at(3600) } } : e)) as AnyJournalEvent[];
    expect(replayJournal(tampered, { globalMaxSteps: 200 })).toMatchObject({ ok: false, divergence: { recorded: { type: 'approval.requested' } } });
  });

  it('detects a recorded approval bound to other args than the engine decides', () => {
    const r = new Run();
    r.toApproval();
    r.decideApproval('approve', at(20));
    r.step(at(21));
    const tampered = r.journal.map((e) => (e.type === 'approval.requested' ? { ...e, data: { ...e.data, argsHash: approvalArgsHash(TOOLS.wire, { account: 'ACC-2', amount: 250 }) } } : e)) as AnyJournalEvent[];
    const report = replayJournal(tampered, { globalMaxSteps: 200 });
    expect(report.ok).toBe(false);
    expect(report.divergence?.recorded.type).toBe('approval.requested');
  });
});

import { describe, expect, it } from '@jest/globals';
import type { AgentSpec, AnyJournalEvent, AnyNewJournalEvent } from '#libs/contracts';
import { approvalDecisionEvent, cancelEvent, createdEvent, decide, initialState, reduce, toolsResolvedEvent, type RunState } from '#libs/engine';
import { approvalRecordOf } from './approvals.js';

const T0 = '2026-01-01T00:00:00.000Z';
const AGENT: AgentSpec = {
  name: 'pay', version: '1', planner: 'graph', tools: ['wire'], limits: { approvalTimeoutSeconds: 30 },
  steps: [{ id: 'w', tool: 'wire', args: { amount: 5 } }],
};

function waiting(): { s: RunState; append(e: AnyNewJournalEvent | null): void } {
  const r = {
    s: initialState('acme', 'run_01HZZZZZZZZZZZZZZZZZZZZZZZ'),
    seq: 0,
    append(e: AnyNewJournalEvent | null) { if (e) r.s = reduce(r.s, { ...e, seq: ++r.seq } as AnyJournalEvent); },
  };
  r.append(createdEvent(r.s, T0, { tenantId: 'acme', runId: r.s.runId, agent: AGENT, input: {} }));
  r.append(toolsResolvedEvent(r.s, T0, { wire: { name: 'wire', version: '1', riskTier: 'irreversible' } }));
  decide(r.s, { now: T0, globalMaxSteps: 10, redispatch: false }).events.forEach((e) => r.append(e));
  return r;
}

describe('the approvals read model', () => {
  it('projects a pending approval with what the API lists', () => {
    const r = waiting();
    expect(approvalRecordOf(r.s)).toEqual({
      id: r.s.approval!.approvalId, tenantId: 'acme', runId: r.s.runId, step: 1, callKey: `${r.s.runId}:1:0`,
      tool: 'wire', version: '1', args: { amount: 5 }, argsHash: r.s.approval!.argsHash, riskTier: 'irreversible',
      status: 'pending', createdAt: T0, expiresAt: '2026-01-01T00:00:30.000Z',
    });
  });

  it('shows who decided, when and why', () => {
    const r = waiting();
    r.append(approvalDecisionEvent(r.s, '2026-01-01T00:00:10.000Z', { tenantId: 'acme', runId: r.s.runId, approvalId: r.s.approval!.approvalId, decision: 'deny', by: 'key1', reason: 'no' }));
    expect(approvalRecordOf(r.s)).toMatchObject({ status: 'denied', decidedAt: '2026-01-01T00:00:10.000Z', decidedBy: 'key1', reason: 'no' });
  });

  it('closes the approval of a run cancelled while it waited (expired: it can no longer be decided)', () => {
    const r = waiting();
    r.append(cancelEvent(r.s, '2026-01-01T00:00:05.000Z'));
    expect(approvalRecordOf(r.s)).toMatchObject({ status: 'expired', decidedAt: '2026-01-01T00:00:05.000Z', reason: 'the run ended (cancelled) before a decision' });
  });

  it('has nothing for a run without approvals', () => {
    expect(approvalRecordOf(initialState('acme', 'run_01HZZZZZZZZZZZZZZZZZZZZZZZ'))).toBeNull();
  });
});

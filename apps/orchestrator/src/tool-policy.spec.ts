import { describe, expect, it } from '@jest/globals';
import type { PinnedTool } from '#libs/contracts';
import { RetryLaterError } from '#libs/messaging';
import { InMemoryPolicyAdapter, PolicyService, type PolicyAdapter } from '#libs/policy';
import { decideToolRuns } from './tool-policy.js';

const TOOLS: Record<string, PinnedTool> = {
  lookup: { name: 'lookup', version: '1', riskTier: 'read' },
  update: { name: 'update', version: '2', riskTier: 'write' },
  wire: { name: 'wire', version: '3', riskTier: 'irreversible' },
};
const DENY_WRITE = { kind: 'permission', subject: '*', operation: 'tools.run', when: 'riskTier=write', effect: 'deny' } as const;

describe('decideToolRuns: the tenant policy on unattended tool calls, recorded on the pinned tools', () => {
  it('leaves read and write tools unmarked by default, and irreversible ones as they are (they always wait)', async () => {
    const svc = await PolicyService.create();
    const { tools, refused } = await decideToolRuns(svc, 'acme', 'payout', TOOLS);
    expect(tools).toEqual(TOOLS);
    expect(refused).toEqual([]);
  });

  it("marks write tools requireApproval for the tenant whose rule denies tools.run, and only for it", async () => {
    const svc = await PolicyService.create();
    await svc.addTenantRule('acme', DENY_WRITE);
    const acme = await decideToolRuns(svc, 'acme', 'payout', TOOLS);
    expect(acme.tools).toEqual({ ...TOOLS, update: { ...TOOLS.update, requireApproval: true } });
    expect(acme.refused).toMatchObject([{ allowed: false, reason: 'denied_by_rule' }]);
    expect((await decideToolRuns(svc, 'globex', 'payout', TOOLS)).tools).toEqual(TOOLS);
  });

  it('asks as agent:<name>, and may name one tool', async () => {
    const svc = await PolicyService.create();
    await svc.replaceTenantRules('acme', [
      { kind: 'permission', subject: 'agent:payout', operation: 'tools.run', when: 'riskTier=write', effect: 'deny' },
      { kind: 'permission', subject: '*', operation: 'tools.run', when: 'tool=lookup', effect: 'deny' },
    ]);
    expect((await decideToolRuns(svc, 'acme', 'payout', TOOLS)).tools).toMatchObject({ update: { requireApproval: true }, lookup: { requireApproval: true } });
    const other = (await decideToolRuns(svc, 'acme', 'support', TOOLS)).tools;
    expect(other.update.requireApproval).toBeUndefined();
    expect(other.lookup.requireApproval).toBe(true);
  });

  it('sees a rule stored by another instance before its announcement arrives (reads the stored rules first)', async () => {
    const adapter = new InMemoryPolicyAdapter();
    const here = await PolicyService.create({ adapter });
    const there = await PolicyService.create({ adapter }); // no watcher: `here` is never told
    await there.addTenantRule('acme', DENY_WRITE);
    expect((await decideToolRuns(here, 'acme', 'payout', TOOLS)).tools.update.requireApproval).toBe(true);
    await there.replaceTenantRules('acme', []);
    expect((await decideToolRuns(here, 'acme', 'payout', TOOLS)).tools.update.requireApproval).toBeUndefined();
  });

  it('makes the run wait (RetryLaterError) when the policy store cannot be read, never decides unchecked', async () => {
    const inner = new InMemoryPolicyAdapter();
    let down = false;
    const adapter: PolicyAdapter = {
      loadPolicy: () => (down ? Promise.reject(new Error('kv down')) : inner.loadPolicy()),
      loadTenantPolicy: (t) => (down ? Promise.reject(new Error('kv down')) : inner.loadTenantPolicy(t)),
      savePolicy: (t, rules, expected) => inner.savePolicy(t, rules, expected),
    };
    const svc = await PolicyService.create({ adapter });
    down = true;
    await expect(decideToolRuns(svc, 'acme', 'payout', TOOLS)).rejects.toBeInstanceOf(RetryLaterError);
  });
});

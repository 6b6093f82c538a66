import { describe, expect, it } from '@jest/globals';
import { AgentmeshError, type CommandMap, type RpcMap } from '#libs/contracts';
import { RetryLaterError, type RpcClient } from '#libs/messaging';
import { withDelegation, type DelegationRpc } from './delegations.js';

const base: CommandMap['tool.execute'] = {
  tenantId: 'acme', runId: 'run_01J00000000000000000000001', step: 3, callKey: 'run_01J00000000000000000000001:3:0',
  tool: { name: 'charge', version: '2', riskTier: 'write', credential: { name: 'stripe', scopes: ['charges:write'] } }, args: { amount: 5 },
};

function rpc(answer: (req: RpcMap['credentials.mint']['req']) => Promise<RpcMap['credentials.mint']['res']>) {
  const asked: Array<RpcMap['credentials.mint']['req']> = [];
  const client: DelegationRpc = { call: async (_name, req) => { asked.push(req); return answer(req); } };
  return { client, asked };
}

describe('withDelegation', () => {
  it('accepts an RpcClient', () => {
    const typed = (c: RpcClient): DelegationRpc => c; // compiles: the real client fits
    expect(typed).toBeDefined();
  });

  it('asks the broker for a delegation bound to the call and puts it on the command only', async () => {
    const { client, asked } = rpc(async () => ({ delegation: 'h.p.s', expiresAt: new Date().toISOString(), scopes: ['charges:write'] }));
    const cmd = await withDelegation(client, base);
    expect(asked).toEqual([{
      tenantId: 'acme', runId: base.runId, step: 3, callKey: base.callKey, tool: { name: 'charge', version: '2' }, credential: { name: 'stripe', scopes: ['charges:write'] },
    }]);
    expect(cmd).toEqual({ ...base, delegation: 'h.p.s' });
    expect(base).not.toHaveProperty('delegation'); // the decided command is not changed
  });

  it('leaves a tool without a credential alone, without asking', async () => {
    const { client, asked } = rpc(async () => { throw new Error('not asked'); });
    const plain = { ...base, tool: { name: 'echo', version: '1', riskTier: 'read' as const } };
    expect(await withDelegation(client, plain)).toEqual(plain);
    expect(asked).toHaveLength(0);
  });

  it('turns a refusal into credentialError, so the tool-runner fails the call closed with its code', async () => {
    const { client } = rpc(async () => { throw new AgentmeshError('permission_denied', 'credential stripe is revoked', { reason: 'credential_revoked' }); });
    expect(await withDelegation(client, { ...base, delegation: 'stale' })).toEqual({
      ...base, credentialError: { code: 'credential_revoked', message: 'credential stripe is revoked' },
    });
  });

  it('makes the call wait when the broker does not answer', async () => {
    const { client } = rpc(async () => { throw new AgentmeshError('unavailable', 'the service answering credentials.mint is unavailable'); });
    await expect(withDelegation(client, base)).rejects.toBeInstanceOf(RetryLaterError);
  });
});

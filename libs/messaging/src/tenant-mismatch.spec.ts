import { describe, expect, it } from '@jest/globals';
import { tenantMismatch } from './server.js';

describe('tenantMismatch: the tenant ids of one message must agree', () => {
  it.each([
    ['cmd.v1.orch.acme.run_1.start', 'acme', { tenantId: 'acme' }],
    ['cmd.v1.tool.acme.run_1', 'acme', { tenantId: 'acme' }],
    ['timer.v1.orch.acme.run_1.approval', 'acme', { tenantId: 'acme' }],
    ['cmd.v1.orch.acme.run_1.cancel', undefined, { tenantId: 'acme' }],
  ])('accepts the command on %s with header %s and payload %j', (subject, header, payload) => {
    expect(tenantMismatch('command', subject, header, payload)).toBeUndefined();
  });

  it.each([
    ['cmd.v1.orch.acme.run_1.start', 'acme', { tenantId: 'globex' }, 'the subject tenant and the payload tenantId disagree'],
    ['cmd.v1.orch.globex.run_1.start', 'acme', { tenantId: 'acme' }, 'the subject tenant and the payload tenantId disagree'],
    ['cmd.v1.orch.acme.run_1.start', 'globex', { tenantId: 'acme' }, 'the am-tenant header and the subject tenant disagree'],
    ['cmd.v1.orch.acme.run_1.start', 'acme', { runId: 'run_1' }, 'the payload carries no tenantId'],
    ['cmd.v1.orch.acme.run_1.start', 'acme', { tenantId: 7 }, 'the payload carries no tenantId'],
    ['cmd.v1.orch.acme.run_1.start', 'acme', ['acme'], 'the payload carries no tenantId'],
    ['cmd.orch.acme', 'acme', { tenantId: 'acme' }, 'the subject carries no tenant'],
    ['cmd.v1.orch.ACME.run_1.start', undefined, { tenantId: 'ACME' }, 'the subject carries no tenant'],
  ])('refuses the command on %s with header %s and payload %j: %s', (subject, header, payload, reason) => {
    expect(tenantMismatch('command', subject, header, payload)).toBe(reason);
  });

  it('checks an RPC request only where it carries both a header and a payload tenantId', () => {
    expect(tenantMismatch('rpc', 'svc.v1.tool-runner.tools.list', 'acme', { tenantId: 'acme' })).toBeUndefined();
    expect(tenantMismatch('rpc', 'svc.v1.tool-runner.tools.list', undefined, { tenantId: 'acme' })).toBeUndefined();
    expect(tenantMismatch('rpc', 'svc.v1.tool-runner.tools.list', 'acme', {})).toBeUndefined();
    expect(tenantMismatch('rpc', 'svc.v1.tool-runner.tools.list', 'acme', { tenantId: 'globex' })).toBe('the am-tenant header and the payload tenantId disagree');
  });
});

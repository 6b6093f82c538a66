import { describe, expect, it } from '@jest/globals';
import { status as Status } from '@grpc/grpc-js';
import { AgentmeshError, conflict, invalid, notFound, type ErrorCode } from '#libs/contracts';
import { decodeStatusDetails, STATUS_DETAILS_KEY } from '#libs/sdk';
import type { Logger } from '#libs/telemetry';
import { CallAbortedError, grpcCodeOf, NotImplementedError, protoFieldPath, toGrpcFailure, type GrpcFailure } from './status.js';

function details(f: GrpcFailure) {
  const bin = f.metadata.get(STATUS_DETAILS_KEY)[0];
  expect(bin).toBeInstanceOf(Buffer);
  return decodeStatusDetails(bin as Buffer);
}

function recordingLogger(): { logger: Logger; errors: unknown[] } {
  const errors: unknown[] = [];
  const logger = { error: (o: unknown) => { errors.push(o); } } as unknown as Logger;
  return { logger, errors };
}

describe('mapping platform errors to gRPC statuses', () => {
  it.each<[ErrorCode, Status]>([
    ['invalid_argument', Status.INVALID_ARGUMENT],
    ['unauthenticated', Status.UNAUTHENTICATED],
    ['permission_denied', Status.PERMISSION_DENIED],
    ['not_found', Status.NOT_FOUND],
    ['payload_too_large', Status.RESOURCE_EXHAUSTED],
    ['rate_limited', Status.RESOURCE_EXHAUSTED],
    ['resource_exhausted', Status.RESOURCE_EXHAUSTED],
    ['unavailable', Status.UNAVAILABLE],
    ['internal', Status.INTERNAL],
  ])('maps %s to %s', (code, expected) => {
    expect(grpcCodeOf(code)).toBe(expected);
    expect(toGrpcFailure(new AgentmeshError(code, 'x'), recordingLogger().logger).code).toBe(expected);
  });

  it('maps conflicts of creation to ALREADY_EXISTS and conflicts with state to ABORTED', () => {
    expect(toGrpcFailure(conflict('reused', 'idempotency_key_reused')).code).toBe(Status.ALREADY_EXISTS);
    expect(toGrpcFailure(conflict('exists', 'version_exists')).code).toBe(Status.ALREADY_EXISTS);
    expect(toGrpcFailure(conflict('taken', 'tenant_exists')).code).toBe(Status.ALREADY_EXISTS);
    expect(toGrpcFailure(conflict('too late', 'approval_expired')).code).toBe(Status.ABORTED);
    expect(toGrpcFailure(conflict('ended', 'run_ended')).code).toBe(Status.ABORTED);
    expect(toGrpcFailure(conflict('no reason')).code).toBe(Status.ABORTED);
  });

  it('carries the problem detail in grpc-status-details-bin, with the fields as proto paths', () => {
    const f = toGrpcFailure(invalid('agent definition is invalid', [
      { field: '/limits/maxSteps', message: 'must be <= 10000' },
      { field: '/steps/2/tool', message: 'is required' },
    ]));
    expect(f.details).toBe('agent definition is invalid');
    const d = details(f);
    expect(d.code).toBe(Status.INVALID_ARGUMENT);
    expect(d.message).toBe('agent definition is invalid');
    expect(d.detail).toMatchObject({
      title: 'Bad Request', httpStatus: 400, code: 'invalid_argument', detail: 'agent definition is invalid',
      type: 'https://agentmesh.dev/problems/invalid-argument',
      fields: [{ field: 'limits.max_steps', message: 'must be <= 10000' }, { field: 'steps[2].tool', message: 'is required' }],
    });
  });

  it('keeps the reason of a conflict for clients to tell the cases apart', () => {
    const d = details(toGrpcFailure(conflict('this Idempotency-Key was used with a different request body', 'idempotency_key_reused')));
    expect(d.detail).toMatchObject({ code: 'conflict', reason: 'idempotency_key_reused', httpStatus: 409 });
  });

  it('sends retry-after for rate limiting, in the trailers and in the detail, in whole seconds', () => {
    const f = toGrpcFailure(new AgentmeshError('rate_limited', 'slow down', { retryAfterSeconds: 1.2 }));
    expect(f.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(f.metadata.get('retry-after')).toEqual(['2']);
    expect(details(f).detail).toMatchObject({ code: 'rate_limited', httpStatus: 429, retryAfterSeconds: 2 });
  });

  it('never leaks the message of an unknown error and logs it instead', () => {
    const { logger, errors } = recordingLogger();
    const f = toGrpcFailure(new Error('connection string mongodb://user:secret@db'), logger);
    expect(f.code).toBe(Status.INTERNAL);
    expect(f.details).toBe('internal error');
    expect(JSON.stringify(details(f))).not.toContain('secret');
    expect(errors).toHaveLength(1);
    const g = toGrpcFailure(new AgentmeshError('internal', 'stack trace with secret'), logger);
    expect(g.details).toBe('internal error');
    expect(details(g).detail?.detail).toBe('internal error');
  });

  it('maps not found with its message', () => {
    const f = toGrpcFailure(notFound('run run_01'));
    expect(f).toMatchObject({ code: Status.NOT_FOUND, details: 'run run_01 not found' });
    expect(details(f).detail).toMatchObject({ httpStatus: 404, code: 'not_found', fields: [] });
  });

  it('reports cancelled calls, missed deadlines and unimplemented operations with their own codes', () => {
    expect(toGrpcFailure(new CallAbortedError('cancelled')).code).toBe(Status.CANCELLED);
    expect(toGrpcFailure(new CallAbortedError('deadline_exceeded')).code).toBe(Status.DEADLINE_EXCEEDED);
    const u = toGrpcFailure(new NotImplementedError('agentmesh.v1.Budgets/GetBudget is not implemented yet'));
    expect(u.code).toBe(Status.UNIMPLEMENTED);
    expect(u.details).toContain('not implemented yet');
    expect(details(u).detail).toMatchObject({ code: 'unimplemented', httpStatus: 501, reason: 'not_implemented' });
  });
});

describe('REST field references as proto field paths', () => {
  it.each([
    ['/agent', 'agent'],
    ['/riskTier', 'risk_tier'],
    ['/inputSchema', 'input_schema'],
    ['/limits/approvalTimeoutSeconds', 'limits.approval_timeout_seconds'],
    ['/steps/0/args/someKey', 'steps[0].args.someKey'],
    ['/metadata/traceId', 'metadata.traceId'],
    ['/input/nested/camelCase', 'input.nested.camelCase'],
    ['/roles/1', 'roles[1]'],
    ['/', ''],
    ['Idempotency-Key', 'idempotency-key'],
    ['tenant', 'tenant'],
    ['afterSeq', 'after_seq'],
    ['/a~1b', 'a/b'],
  ])('%s is %s', (rest, proto) => {
    expect(protoFieldPath(rest)).toBe(proto);
  });
});

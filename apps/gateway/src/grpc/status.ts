import { Metadata, status as Status } from '@grpc/grpc-js';
import { AgentmeshError, type ErrorCode, type FieldProblem } from '#libs/contracts';
import { encodeStatusDetails, STATUS_DETAILS_KEY, type ErrorDetail, type FieldViolation } from '#libs/sdk';
import type { Logger } from '#libs/telemetry';
import { problem } from '../http/problem.js';

/** What a failed call ends with: grpc-js takes it as the callback error or the stream's 'error'. */
export interface GrpcFailure {
  code: Status;
  details: string;
  metadata: Metadata;
}

/**
 * Conflict reasons that mean "the thing being created exists with another body" (ALREADY_EXISTS);
 * every other conflict is with the resource's current state (ABORTED), as proto/README.md says.
 */
const ALREADY_EXISTS_REASONS = new Set(['idempotency_key_reused', 'version_exists', 'tenant_exists', 'already_exists']);

const CODES: Record<ErrorCode, Status> = {
  invalid_argument: Status.INVALID_ARGUMENT,
  unauthenticated: Status.UNAUTHENTICATED,
  permission_denied: Status.PERMISSION_DENIED,
  not_found: Status.NOT_FOUND,
  conflict: Status.ABORTED,
  payload_too_large: Status.RESOURCE_EXHAUSTED,
  rate_limited: Status.RESOURCE_EXHAUSTED,
  resource_exhausted: Status.RESOURCE_EXHAUSTED,
  unavailable: Status.UNAVAILABLE,
  internal: Status.INTERNAL,
};

/** The gRPC status code of a platform error class (conflicts split by reason). */
export function grpcCodeOf(code: ErrorCode, reason?: string): Status {
  if (code === 'conflict') return reason && ALREADY_EXISTS_REASONS.has(reason) ? Status.ALREADY_EXISTS : Status.ABORTED;
  return CODES[code] ?? Status.INTERNAL;
}

/** The call was cancelled by the client or ran past its deadline; nobody will read the answer. */
export class CallAbortedError extends Error {
  override name = 'CallAbortedError';
  constructor(readonly code: 'cancelled' | 'deadline_exceeded', options?: { cause?: unknown }) {
    super(code === 'cancelled' ? 'the call was cancelled by the client' : 'the deadline of the call was exceeded', options);
  }
}

/** The RPC exists in the contract but the platform does not serve it yet. */
export class NotImplementedError extends Error {
  override name = 'NotImplementedError';
  readonly code = 'unimplemented';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Free-form JSON members of request bodies: JSON pointer segments below them are data keys, not field names. */
const FREE_FORM = new Set(['input', 'metadata', 'inputSchema', 'args', 'output', 'data']);
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const unescape = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');

/**
 * A REST field reference (a JSON pointer into the body such as `/limits/maxSteps` or
 * `/steps/2/tool`, or a header name) → the proto field path (`limits.max_steps`, `steps[2].tool`).
 * Keys inside free-form JSON (input, metadata, inputSchema, args, output) are kept as they are.
 */
export function protoFieldPath(field: string): string {
  if (field === 'Idempotency-Key') return 'idempotency-key';
  if (!field.startsWith('/')) return snake(field);
  if (field === '/') return '';
  let out = '';
  let data = false;
  for (const raw of field.slice(1).split('/')) {
    const seg = unescape(raw);
    if (/^(0|[1-9][0-9]*)$/.test(seg)) { out += `[${seg}]`; continue; }
    const name = data ? seg : snake(seg);
    out += out ? `.${name}` : name;
    if (!data && FREE_FORM.has(seg)) data = true;
  }
  return out;
}

export const fieldViolations = (fields: readonly FieldProblem[] | undefined): FieldViolation[] =>
  (fields ?? []).map((f) => ({ field: protoFieldPath(f.field), message: f.message }));

function failure(code: Status, detail: ErrorDetail, extraMetadata: Record<string, string> = {}): GrpcFailure {
  const metadata = new Metadata();
  metadata.set(STATUS_DETAILS_KEY, encodeStatusDetails(code, detail.detail, detail));
  for (const [k, v] of Object.entries(extraMetadata)) metadata.set(k, v);
  return { code, details: detail.detail, metadata };
}

function detailOf(httpStatus: number, message: string, code: string, extra: Partial<ErrorDetail> = {}): ErrorDetail {
  const p = problem(httpStatus, message, code);
  return {
    type: p.type, title: p.title, httpStatus, detail: message, code, reason: '', fields: [], retryAfterSeconds: 0, ...extra,
  };
}

/**
 * Maps any error to the status a call ends with, following the REST problem mapping: the status
 * code per API.md, the message as the status message, and the problem detail (code, reason,
 * fields, retry-after) in `grpc-status-details-bin`. Unknown errors are logged and become INTERNAL
 * with a fixed message, never their own.
 */
export function toGrpcFailure(e: unknown, logger?: Logger): GrpcFailure {
  if (e instanceof AgentmeshError) {
    const code = grpcCodeOf(e.code, e.extra.reason);
    if (code === Status.INTERNAL) {
      logger?.error({ err: e }, 'internal error in a gRPC call');
      return failure(code, detailOf(500, 'internal error', 'internal'));
    }
    const retry = e.extra.retryAfterSeconds !== undefined ? Math.max(1, Math.ceil(e.extra.retryAfterSeconds)) : 0;
    const detail = detailOf(e.status, e.message, e.code, {
      reason: e.extra.reason ?? '',
      fields: fieldViolations(e.extra.fields),
      retryAfterSeconds: retry,
    });
    return failure(code, detail, retry ? { 'retry-after': String(retry) } : {});
  }
  if (e instanceof CallAbortedError) {
    return e.code === 'cancelled'
      ? failure(Status.CANCELLED, detailOf(499, e.message, 'cancelled', { title: 'Client Closed Request' }))
      : failure(Status.DEADLINE_EXCEEDED, detailOf(504, e.message, 'deadline_exceeded', { title: 'Gateway Timeout' }));
  }
  if (e instanceof NotImplementedError) {
    return failure(Status.UNIMPLEMENTED, detailOf(501, e.message, 'unimplemented', { title: 'Not Implemented', reason: 'not_implemented' }));
  }
  logger?.error({ err: e }, 'unhandled error in a gRPC call');
  return failure(Status.INTERNAL, detailOf(500, 'internal error', 'internal'));
}

import { describe, expect, it } from '@jest/globals';
import { createRequire } from 'node:module';
import { protoDir } from '#libs/contracts';
import {
  decodeErrorDetail, decodeRpcStatus, decodeStatusDetails, encodeErrorDetail, encodeStatusDetails, ERROR_DETAIL_TYPE_URL,
  StatusDetailsDecodeError, type ErrorDetail,
} from './status-details.js';

const DETAIL: ErrorDetail = {
  type: 'https://agentmesh.dev/problems/invalid-argument', title: 'Bad Request', httpStatus: 400,
  detail: 'request body is invalid: /agent is required', code: 'invalid_argument', reason: '',
  fields: [{ field: 'agent', message: 'is required' }, { field: 'steps[1].tool', message: 'must match pattern "é"' }],
  retryAfterSeconds: 0,
};

interface PbType {
  decode(b: Uint8Array): unknown;
  encode(m: unknown): { finish(): Uint8Array };
  fromObject(o: unknown): unknown;
  toObject(m: unknown, o?: object): Record<string, unknown>;
}
interface PbRoot { lookupType(name: string): PbType }

/** protobufjs (what @grpc/proto-loader is built on) over common.proto, as an independent codec (camelCase field names). */
function reference(): { ErrorDetail: PbType; RpcStatus: PbType } | undefined {
  try {
    const require = createRequire(import.meta.url);
    const pbjs = require(require.resolve('protobufjs', { paths: [require.resolve('@grpc/proto-loader')] })) as {
      Root: new () => PbRoot & { resolvePath: (o: string, t: string) => string; loadSync(f: string): PbRoot };
    };
    const root = new pbjs.Root();
    root.resolvePath = (_origin, target) => (target.startsWith('google/') ? target : `${protoDir()}/${target}`);
    const r = root.loadSync('agentmesh/v1/common.proto');
    return { ErrorDetail: r.lookupType('agentmesh.v1.ErrorDetail'), RpcStatus: r.lookupType('agentmesh.v1.RpcStatus') };
  } catch {
    return undefined;
  }
}

describe('grpc-status-details-bin codec', () => {
  it('round-trips an ErrorDetail and a google.rpc.Status carrying it', () => {
    expect(decodeErrorDetail(encodeErrorDetail(DETAIL))).toEqual(DETAIL);
    const decoded = decodeStatusDetails(encodeStatusDetails(3, DETAIL.detail, DETAIL));
    expect(decoded).toEqual({ code: 3, message: DETAIL.detail, detail: DETAIL });
    const raw = decodeRpcStatus(encodeStatusDetails(3, 'x', DETAIL));
    expect(raw.details.map((d) => d.typeUrl)).toEqual([ERROR_DETAIL_TYPE_URL]);
  });

  it('writes what protobufjs reads as agentmesh.v1.RpcStatus / ErrorDetail, and reads what it writes', () => {
    const ref = reference();
    if (!ref) { console.warn('skipped: protobufjs (a dependency of @grpc/proto-loader) could not be loaded'); return; }
    const withRetry = { ...DETAIL, code: 'rate_limited', httpStatus: 429, retryAfterSeconds: 7, reason: 'tenant_quota' };
    const st = ref.RpcStatus.toObject(ref.RpcStatus.decode(encodeStatusDetails(8, 'slow down', withRetry)), { longs: Number }) as {
      code: number; message: string; details: Array<{ type_url: string; value: Uint8Array }>;
    };
    expect(st.code).toBe(8);
    expect(st.message).toBe('slow down');
    expect(st.details[0].type_url).toBe(ERROR_DETAIL_TYPE_URL);
    const d = ref.ErrorDetail.toObject(ref.ErrorDetail.decode(st.details[0].value));
    expect(d).toEqual({
      type: withRetry.type, title: withRetry.title, httpStatus: 429, detail: withRetry.detail, code: 'rate_limited',
      reason: 'tenant_quota', fields: withRetry.fields, retryAfterSeconds: 7,
    });
    const theirs = ref.ErrorDetail.encode(ref.ErrorDetail.fromObject({ code: 'not_found', httpStatus: 404, fields: [{ field: 'run_id', message: 'x' }] })).finish();
    expect(decodeErrorDetail(theirs)).toMatchObject({ code: 'not_found', httpStatus: 404, fields: [{ field: 'run_id', message: 'x' }] });
  });

  it('skips fields it does not know, so later additions stay readable', () => {
    // field 15 varint 1, field 16 length-delimited "zz", then code = "x"
    const extra = Buffer.from([0x78, 0x01, 0x82, 0x01, 0x02, 0x7a, 0x7a, 0x2a, 0x01, 0x78]);
    expect(decodeErrorDetail(extra).code).toBe('x');
  });

  it('returns no detail when the status carries none, and refuses truncated input', () => {
    expect(decodeStatusDetails(Buffer.from([0x08, 0x05])).detail).toBeUndefined();
    expect(() => decodeErrorDetail(Buffer.from([0x0a, 0x05, 0x61]))).toThrow(StatusDetailsDecodeError);
  });
});

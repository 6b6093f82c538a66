/**
 * The error model's wire form: the trailing metadata `grpc-status-details-bin` holds a
 * `google.rpc.Status` (`agentmesh.v1.RpcStatus` in common.proto is a wire-identical copy) whose
 * `details` hold one `google.protobuf.Any` packing an `agentmesh.v1.ErrorDetail`.
 *
 * proto-loader gives no serializer for plain messages, so this is a small hand-written protobuf
 * codec of exactly these three messages (field numbers from common.proto). Unknown fields are
 * skipped when decoding, so later additions to ErrorDetail stay readable.
 */

export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
export const ERROR_DETAIL_TYPE_URL = 'type.googleapis.com/agentmesh.v1.ErrorDetail';

export interface FieldViolation {
  field: string;
  message: string;
}

/** `agentmesh.v1.ErrorDetail`: the REST problem body of the same failure. */
export interface ErrorDetail {
  type: string;
  title: string;
  httpStatus: number;
  detail: string;
  code: string;
  reason: string;
  fields: FieldViolation[];
  retryAfterSeconds: number;
}

/** `google.rpc.Status` with its details still packed. */
export interface RpcStatus {
  code: number;
  message: string;
  details: Array<{ typeUrl: string; value: Uint8Array }>;
}

export class StatusDetailsDecodeError extends Error {
  override name = 'StatusDetailsDecodeError';
  readonly code = 'malformed_status_details';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

// ---- writer

class Writer {
  private readonly parts: Buffer[] = [];

  private varint(n: bigint): void {
    const bytes: number[] = [];
    let v = BigInt.asUintN(64, n);
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) b |= 0x80;
      bytes.push(b);
    } while (v > 0n);
    this.parts.push(Buffer.from(bytes));
  }
  private tag(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }
  uint(field: number, n: number): this {
    if (n) { this.tag(field, 0); this.varint(BigInt(Math.trunc(n))); }
    return this;
  }
  string(field: number, s: string): this {
    return s ? this.bytes(field, Buffer.from(s, 'utf8')) : this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2);
    this.varint(BigInt(b.length));
    this.parts.push(Buffer.from(b));
    return this;
  }
  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

// ---- reader

type Handler = (wire: number, r: Reader) => void;

class Reader {
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  private varintBig(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.buf.length) throw new StatusDetailsDecodeError('truncated varint');
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
    }
    throw new StatusDetailsDecodeError('varint too long');
  }
  uint32(): number {
    return Number(BigInt.asUintN(32, this.varintBig()));
  }
  int32(): number {
    return Number(BigInt.asIntN(32, this.varintBig()));
  }
  bytes(): Uint8Array {
    const len = Number(this.varintBig());
    if (this.pos + len > this.buf.length) throw new StatusDetailsDecodeError('truncated length-delimited field');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  string(): string {
    return Buffer.from(this.bytes()).toString('utf8');
  }
  skip(wire: number): void {
    switch (wire) {
      case 0: this.varintBig(); return;
      case 1: this.advance(8); return;
      case 2: this.bytes(); return;
      case 5: this.advance(4); return;
      default: throw new StatusDetailsDecodeError(`unsupported wire type ${wire}`);
    }
  }
  private advance(n: number): void {
    if (this.pos + n > this.buf.length) throw new StatusDetailsDecodeError('truncated fixed field');
    this.pos += n;
  }
  /** Reads every field, calling the handler of its number (or skipping it). */
  read(handlers: Record<number, Handler>): void {
    while (this.pos < this.buf.length) {
      const key = this.varintBig();
      const field = Number(key >> 3n);
      const wire = Number(key & 7n);
      const h = handlers[field];
      if (h) h(wire, this); else this.skip(wire);
    }
  }
}

function expectWire(actual: number, expected: number, what: string): void {
  if (actual !== expected) throw new StatusDetailsDecodeError(`${what}: wire type ${actual}, expected ${expected}`);
}

// ---- messages

export function encodeErrorDetail(d: ErrorDetail): Buffer {
  const w = new Writer()
    .string(1, d.type).string(2, d.title).uint(3, d.httpStatus).string(4, d.detail)
    .string(5, d.code).string(6, d.reason);
  for (const f of d.fields) w.bytes(7, new Writer().string(1, f.field).string(2, f.message).finish());
  return w.uint(8, d.retryAfterSeconds).finish();
}

export function decodeErrorDetail(buf: Uint8Array): ErrorDetail {
  const d: ErrorDetail = { type: '', title: '', httpStatus: 0, detail: '', code: '', reason: '', fields: [], retryAfterSeconds: 0 };
  const str = (k: 'type' | 'title' | 'detail' | 'code' | 'reason') => (wire: number, r: Reader) => { expectWire(wire, 2, k); d[k] = r.string(); };
  new Reader(buf).read({
    1: str('type'), 2: str('title'), 4: str('detail'), 5: str('code'), 6: str('reason'),
    3: (wire, r) => { expectWire(wire, 0, 'http_status'); d.httpStatus = r.uint32(); },
    8: (wire, r) => { expectWire(wire, 0, 'retry_after_seconds'); d.retryAfterSeconds = r.uint32(); },
    7: (wire, r) => {
      expectWire(wire, 2, 'fields');
      const f: FieldViolation = { field: '', message: '' };
      new Reader(r.bytes()).read({
        1: (w2, r2) => { expectWire(w2, 2, 'field'); f.field = r2.string(); },
        2: (w2, r2) => { expectWire(w2, 2, 'message'); f.message = r2.string(); },
      });
      d.fields.push(f);
    },
  });
  return d;
}

export function encodeRpcStatus(s: RpcStatus): Buffer {
  const w = new Writer();
  if (s.code) w.uint(1, s.code);
  w.string(2, s.message);
  for (const packed of s.details) w.bytes(3, new Writer().string(1, packed.typeUrl).bytes(2, packed.value).finish());
  return w.finish();
}

export function decodeRpcStatus(buf: Uint8Array): RpcStatus {
  const s: RpcStatus = { code: 0, message: '', details: [] };
  new Reader(buf).read({
    1: (wire, r) => { expectWire(wire, 0, 'code'); s.code = r.int32(); },
    2: (wire, r) => { expectWire(wire, 2, 'message'); s.message = r.string(); },
    3: (wire, r) => {
      expectWire(wire, 2, 'details');
      const packed = { typeUrl: '', value: new Uint8Array(0) as Uint8Array };
      new Reader(r.bytes()).read({
        1: (w2, r2) => { expectWire(w2, 2, 'type_url'); packed.typeUrl = r2.string(); },
        2: (w2, r2) => { expectWire(w2, 2, 'value'); packed.value = r2.bytes(); },
      });
      s.details.push(packed);
    },
  });
  return s;
}

/** The `grpc-status-details-bin` value of a failed call: a google.rpc.Status with one ErrorDetail. */
export function encodeStatusDetails(code: number, message: string, detail: ErrorDetail): Buffer {
  return encodeRpcStatus({ code, message, details: [{ typeUrl: ERROR_DETAIL_TYPE_URL, value: encodeErrorDetail(detail) }] });
}

/** Reads `grpc-status-details-bin`: the status and its ErrorDetail, if it carries one. */
export function decodeStatusDetails(buf: Uint8Array): { code: number; message: string; detail?: ErrorDetail } {
  const s = decodeRpcStatus(buf);
  const packed = s.details.find((d) => d.typeUrl === ERROR_DETAIL_TYPE_URL);
  return { code: s.code, message: s.message, ...(packed ? { detail: decodeErrorDetail(packed.value) } : {}) };
}

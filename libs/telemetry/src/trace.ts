import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';

/**
 * W3C trace context carried through REST, gRPC and NATS headers, with the tenant and session of
 * the work in hand. Log lines read it (see logger.ts); publishers copy it into message headers.
 */
export interface TraceContext {
  traceparent: string;
  sessionId?: string;
  tenantId?: string;
}

/** A parsed W3C `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header). */
export interface Traceparent {
  version: string;
  traceId: string;
  spanId: string;
  flags: string;
}

const als = new AsyncLocalStorage<TraceContext>();
// version-traceid-parentid-flags; a future version may append fields after another dash
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
/** Session and tenant ids that may enter logs and headers: short, no spaces or control characters. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export const runWithTrace = <T>(ctx: TraceContext, fn: () => T): T => als.run(ctx, fn);
export const currentTrace = (): TraceContext | undefined => als.getStore();
export const currentTraceparent = (): string | undefined => als.getStore()?.traceparent;

/**
 * Adds what became known after the scope started (the run's session once its state is loaded) to
 * the current trace context, so later log lines and published messages carry it. Outside a traced
 * scope, and for values that are not plain short ids, it does nothing.
 */
export function annotateTrace(fields: { sessionId?: string | null; tenantId?: string | null }): void {
  const t = als.getStore();
  if (!t) return;
  const sessionId = safeId(fields.sessionId);
  const tenantId = safeId(fields.tenantId);
  if (sessionId) t.sessionId = sessionId;
  if (tenantId) t.tenantId = tenantId;
}

/** The value if it is a plain short id (safe for logs and headers), else undefined. */
export function safeId(v: unknown): string | undefined {
  return typeof v === 'string' && SAFE_ID.test(v) ? v : undefined;
}

/** Random hex from a pooled buffer: one getrandom call per 512 ids instead of one per id. */
let pool = Buffer.alloc(0);
let poolAt = 0;
function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) { pool = randomBytes(8192); poolAt = 0; }
  const s = pool.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return s;
}

/**
 * Parses a `traceparent` header value. Returns undefined for anything the W3C spec says to ignore:
 * wrong shape, upper-case hex, version `ff`, version 00 with trailing data, all-zero ids.
 */
export function parseTraceparent(value: string | null | undefined): Traceparent | undefined {
  if (typeof value !== 'string' || value.length > 512) return undefined;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { version, traceId, spanId, flags };
}

/**
 * Continues an incoming traceparent with a new span id (same trace id, same sampled flag), or
 * starts a new sampled trace when there is none or it is invalid.
 */
export function childTraceparent(incoming?: string | null): string {
  const p = parseTraceparent(incoming);
  const traceId = p ? p.traceId : randomHex(16);
  const flags = p ? (parseInt(p.flags, 16) & 0x01 ? '01' : '00') : '01';
  return `00-${traceId}-${randomHex(8)}-${flags}`;
}

export const traceIdOf = (traceparent: string | undefined): string | undefined => traceparent?.split('-')[1];

/** The first value of a header that may arrive as a string, bytes or a list of them. */
function firstValue(v: unknown): string | undefined {
  const one = Array.isArray(v) ? v[0] : v;
  if (typeof one === 'string') return one;
  if (one instanceof Uint8Array) return Buffer.from(one).toString('utf8');
  return undefined;
}

/** The slice of gRPC's `Metadata` this module reads (`metadata.get(key)` returns a list). */
export interface MetadataLike {
  get(key: string): unknown[];
}

/**
 * The trace context for one incoming gRPC call, from its metadata (or from the raw `traceparent`
 * value): continues the caller's trace or starts one, and takes the session from `am-session`.
 * Run the handler inside it and echo `ctx.traceparent` back as response metadata:
 *
 *   const ctx = traceFromMetadata(call.metadata, { tenantId });
 *   call.sendMetadata(new Metadata()); // after md.set('traceparent', ctx.traceparent)
 *   return runWithTrace(ctx, () => handle(call));
 */
export function traceFromMetadata(
  metadata: MetadataLike | string | Uint8Array | readonly unknown[] | null | undefined,
  extra: { tenantId?: string | null; sessionId?: string | null } = {},
): TraceContext {
  const md = metadata && typeof (metadata as MetadataLike).get === 'function' ? (metadata as MetadataLike) : undefined;
  const incoming = md ? firstValue(md.get(TRACE_HEADERS.traceparent)) : firstValue(metadata);
  const ctx: TraceContext = { traceparent: childTraceparent(incoming) };
  const sessionId = safeId(extra.sessionId) ?? (md ? safeId(firstValue(md.get(TRACE_HEADERS.session))) : undefined);
  const tenantId = safeId(extra.tenantId);
  if (tenantId) ctx.tenantId = tenantId;
  if (sessionId) ctx.sessionId = sessionId;
  return ctx;
}

/** Header / metadata names (the NATS names live in libs/contracts HEADERS and are the same). */
export const TRACE_HEADERS = { traceparent: 'traceparent', session: 'am-session' } as const;

import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';

/** W3C trace context carried through REST, gRPC and NATS headers. */
export interface TraceContext {
  traceparent: string;
  sessionId?: string;
  tenantId?: string;
}

const als = new AsyncLocalStorage<TraceContext>();
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export const runWithTrace = <T>(ctx: TraceContext, fn: () => T): T => als.run(ctx, fn);
export const currentTrace = (): TraceContext | undefined => als.getStore();
export const currentTraceparent = (): string | undefined => als.getStore()?.traceparent;

/** Random hex from a pooled buffer: one getrandom call per 512 ids instead of one per id. */
let pool = Buffer.alloc(0);
let poolAt = 0;
function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) { pool = randomBytes(8192); poolAt = 0; }
  const s = pool.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return s;
}

/** Continues an incoming traceparent with a new span id, or starts a new trace. */
export function childTraceparent(incoming?: string | null): string {
  const m = incoming ? TRACEPARENT.exec(incoming.trim()) : null;
  const traceId = m ? m[1] : randomHex(16);
  return `00-${traceId}-${randomHex(8)}-01`;
}

export const traceIdOf = (traceparent: string | undefined): string | undefined => traceparent?.split('-')[1];

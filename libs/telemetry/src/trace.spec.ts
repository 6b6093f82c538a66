import { describe, expect, it } from '@jest/globals';
import { HEADERS } from '#libs/contracts';
import {
  annotateTrace, childTraceparent, currentTrace, currentTraceparent, parseTraceparent, runWithTrace, TRACE_HEADERS,
  traceFromMetadata, traceIdOf,
} from './trace.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const INCOMING = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
const SHAPE = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/;

/** A stand-in for @grpc/grpc-js Metadata: get() returns every value of a key. */
const metadata = (entries: Record<string, Array<string | Buffer>>) => ({ get: (k: string) => entries[k] ?? [] });

describe('traceparent parsing', () => {
  it('reads the version, trace id, parent span id and flags of a valid header', () => {
    expect(parseTraceparent(INCOMING)).toEqual({ version: '00', traceId: TRACE_ID, spanId: '00f067aa0ba902b7', flags: '01' });
    expect(parseTraceparent(`  ${INCOMING} `)?.traceId).toBe(TRACE_ID);
  });

  it('accepts a future version with extra fields but not version 00 with extra fields', () => {
    expect(parseTraceparent(`01-${TRACE_ID}-00f067aa0ba902b7-01-whatever`)?.traceId).toBe(TRACE_ID);
    expect(parseTraceparent(`${INCOMING}-extra`)).toBeUndefined();
  });

  it.each([
    ['empty', ''],
    ['garbage', 'hello'],
    ['upper-case hex', INCOMING.toUpperCase()],
    ['the forbidden version ff', `ff-${TRACE_ID}-00f067aa0ba902b7-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
    ['an all-zero span id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['a short trace id', `00-${TRACE_ID.slice(1)}-00f067aa0ba902b7-01`],
    ['two headers joined by a comma', `${INCOMING}, ${INCOMING}`],
  ])('rejects %s', (_what, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });
});

describe('trace continuation', () => {
  it('keeps the trace id and the sampled flag of a valid parent and draws a new span id', () => {
    const child = childTraceparent(INCOMING);
    expect(child).toMatch(SHAPE);
    expect(traceIdOf(child)).toBe(TRACE_ID);
    expect(parseTraceparent(child)?.spanId).not.toBe('00f067aa0ba902b7');
    expect(parseTraceparent(child)?.flags).toBe('01');
    expect(parseTraceparent(childTraceparent(`00-${TRACE_ID}-00f067aa0ba902b7-00`))?.flags).toBe('00');
  });

  it('starts a new sampled trace when the parent is missing or invalid', () => {
    for (const bad of [undefined, null, '', 'nope', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`]) {
      const t = childTraceparent(bad);
      expect(t).toMatch(SHAPE);
      expect(t.endsWith('-01')).toBe(true);
      expect(traceIdOf(t)).not.toBe('0'.repeat(32));
    }
    expect(traceIdOf(childTraceparent())).not.toBe(traceIdOf(childTraceparent()));
  });

  it('gives every id of a burst a distinct span', () => {
    const spans = new Set(Array.from({ length: 2000 }, () => parseTraceparent(childTraceparent(INCOMING))!.spanId));
    expect(spans.size).toBe(2000);
  });
});

describe('the trace context', () => {
  it('follows the work across awaits and timers and is absent outside', async () => {
    expect(currentTrace()).toBeUndefined();
    const tp = childTraceparent(INCOMING);
    const seen = await runWithTrace({ traceparent: tp, tenantId: 'acme' }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      await Promise.resolve();
      return currentTraceparent();
    });
    expect(seen).toBe(tp);
    expect(currentTrace()).toBeUndefined();
  });

  it('keeps concurrent scopes apart', async () => {
    const a = childTraceparent();
    const b = childTraceparent();
    const read = (ms: number) => new Promise<string | undefined>((r) => setTimeout(() => r(currentTraceparent()), ms));
    const [ra, rb] = await Promise.all([runWithTrace({ traceparent: a }, () => read(5)), runWithTrace({ traceparent: b }, () => read(1))]);
    expect([ra, rb]).toEqual([a, b]);
  });

  it('takes a session learnt later in the scope, and ignores values unsafe for logs and headers', async () => {
    const ctx = { traceparent: childTraceparent() };
    await runWithTrace(ctx, async () => {
      annotateTrace({ sessionId: 'bad value\r\nx-injected: 1' });
      expect(currentTrace()?.sessionId).toBeUndefined();
      await Promise.resolve();
      annotateTrace({ sessionId: 'sess-42', tenantId: 'acme' });
      annotateTrace({ sessionId: null });
    });
    expect(ctx).toMatchObject({ sessionId: 'sess-42', tenantId: 'acme' });
    expect(() => annotateTrace({ sessionId: 'outside' })).not.toThrow();
  });
});

describe('trace context from gRPC metadata', () => {
  it('continues the caller trace and takes the session from am-session', () => {
    const ctx = traceFromMetadata(metadata({ traceparent: [INCOMING], 'am-session': ['chat-7'] }), { tenantId: 'acme' });
    expect(traceIdOf(ctx.traceparent)).toBe(TRACE_ID);
    expect(ctx.traceparent).not.toBe(INCOMING);
    expect(ctx).toMatchObject({ tenantId: 'acme', sessionId: 'chat-7' });
  });

  it('accepts the raw metadata value as a string or bytes, and starts a trace without one', () => {
    expect(traceIdOf(traceFromMetadata(INCOMING).traceparent)).toBe(TRACE_ID);
    expect(traceIdOf(traceFromMetadata(Buffer.from(INCOMING)).traceparent)).toBe(TRACE_ID);
    expect(traceIdOf(traceFromMetadata([INCOMING]).traceparent)).toBe(TRACE_ID);
    const fresh = traceFromMetadata(metadata({}));
    expect(fresh.traceparent).toMatch(SHAPE);
    expect(fresh.sessionId).toBeUndefined();
    expect(traceFromMetadata(undefined).traceparent).toMatch(SHAPE);
  });

  it('prefers the session the request names over the metadata and drops unsafe ones', () => {
    expect(traceFromMetadata(metadata({ 'am-session': ['md'] }), { sessionId: 'body' }).sessionId).toBe('body');
    expect(traceFromMetadata(metadata({ 'am-session': ['has space'] })).sessionId).toBeUndefined();
  });

  it('uses the same header names as the NATS contracts', () => {
    expect(TRACE_HEADERS).toEqual({ traceparent: HEADERS.traceparent, session: HEADERS.session });
  });
});

import type { NextFunction, Request, Response } from 'express';
import { childTraceparent, runWithTrace, safeId, TRACE_HEADERS, type Logger, type TraceContext } from '#libs/telemetry';

const TENANT_PATH = /^\/v1\/tenants\/([^/?#]+)/;
/** Probes and scrapes: traced like everything else, but not access-logged (they would drown the log). */
const QUIET = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * First middleware of the gateway: every request runs in a W3C trace context. An incoming
 * `traceparent` is continued (new span id, same trace id), otherwise a trace starts; the gateway's
 * `traceparent` is echoed as a response header. The context carries the tenant named by the path
 * and the session named by the request body (`sessionId`, known once the body is parsed), so every
 * log line of the request, and every command it publishes (CommandBus copies the context into NATS
 * headers), carries them. One access-log line per request when it ends.
 */
export function traceContext(logger: Logger) {
  return function traceContext(req: Request, res: Response, next: NextFunction): void {
    const started = process.hrtime.bigint();
    const traceparent = childTraceparent(single(req.headers[TRACE_HEADERS.traceparent]));
    const ctx: TraceContext = { traceparent };
    const m = TENANT_PATH.exec(req.path);
    const tenantId = m ? safeId(decode(m[1])) : undefined;
    if (tenantId) ctx.tenantId = tenantId;
    let annotated: string | undefined;
    Object.defineProperty(ctx, 'sessionId', {
      enumerable: true,
      configurable: true,
      // body parsers run after this middleware: read the session lazily, when a log line or a publish asks
      get: () => annotated ?? safeId((req.body as { sessionId?: unknown } | undefined)?.sessionId),
      set: (v: unknown) => { annotated = safeId(v) ?? annotated; },
    });
    res.setHeader(TRACE_HEADERS.traceparent, traceparent);
    if (!QUIET.has(req.path)) {
      res.once('close', () => {
        const route = req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
        const ms = Math.round(Number(process.hrtime.bigint() - started) / 1e3) / 1e3;
        runWithTrace(ctx, () => logger.info(
          { method: req.method, route, path: req.path, status: res.statusCode, ms, ...(res.writableFinished ? {} : { aborted: true }) },
          'request',
        ));
      });
    }
    runWithTrace(ctx, next);
  };
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function decode(s: string): string | undefined {
  try { return decodeURIComponent(s); } catch { return undefined; }
}

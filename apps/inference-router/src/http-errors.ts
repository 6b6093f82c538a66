import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { AgentmeshError, HTTP_STATUS, invalid } from '#libs/contracts';
import type { Logger } from '#libs/telemetry';

const TYPES: Record<number, string> = {
  400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error',
  413: 'invalid_request_error', 429: 'rate_limit_error',
};

/** The error body OpenAI clients understand: `{error: {message, type, code, param}}`. */
export function errorBody(status: number, code: string, message: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { error: { message, type: TYPES[status] ?? 'server_error', code, param: null, ...extra } };
}

/** Sends an error with node's own API (the hot path is not an express route). */
export function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const data = JSON.stringify(errorBody(status, code, message, extra));
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

/** Maps an error to its HTTP answer; unknown errors are logged and never echoed. */
export function httpError(e: unknown, logger: Logger): { status: number; code: string; message: string; headers: Record<string, string>; extra: Record<string, unknown> } {
  if (e instanceof AgentmeshError) {
    const headers: Record<string, string> = {};
    if (e.extra.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(e.extra.retryAfterSeconds)));
    const extra: Record<string, unknown> = {};
    if (e.extra.fields) extra.fields = e.extra.fields;
    return { status: HTTP_STATUS[e.code], code: e.extra.reason ?? e.code, message: e.message, headers, extra };
  }
  logger.error({ err: e }, 'inference request failed');
  return { status: 500, code: 'internal', message: 'internal error', headers: {}, extra: {} };
}

/** Express error handler for the JSON body parser (it runs before Nest's routing). */
export function bodyErrorHandler(limitBytes: number) {
  return (err: { type?: string; status?: number } | undefined, _req: Request, res: Response, next: NextFunction): void => {
    if (!err) {
      next();
      return;
    }
    if (err.type === 'entity.too.large') sendError(res, 413, 'payload_too_large', `the request body is larger than ${limitBytes} bytes`);
    else if (err.type === 'entity.parse.failed') sendError(res, 400, 'invalid_json', 'the request body is not valid JSON');
    else sendError(res, err.status && err.status < 500 ? err.status : 400, 'invalid_body', 'the request body could not be read');
  };
}

/** Reads a JSON request body of at most `limit` bytes (`payload_too_large` / `invalid_argument` otherwise). */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw new AgentmeshError('payload_too_large', `the request body is larger than ${limit} bytes`);
  }
  const parts = await new Promise<Buffer[]>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      if (size > limit) return; // discarding the rest
      size += b.length;
      if (size > limit) {
        reject(new AgentmeshError('payload_too_large', `the request body is larger than ${limit} bytes`));
        return;
      }
      chunks.push(b);
    });
    req.once('end', () => resolve(chunks));
    req.once('error', (err) => reject(new AgentmeshError('invalid_argument', 'the request body could not be read', { cause: err })));
  });
  const text = (parts.length === 1 ? parts[0] : Buffer.concat(parts)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw invalid('the request body is not valid JSON', [{ field: '/', message: 'is not valid JSON' }]);
  }
}

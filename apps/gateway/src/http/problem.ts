import { ArgumentsHost, Catch, HttpException, type ExceptionFilter } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { AgentmeshError, type ErrorCode, type FieldProblem } from '#libs/contracts';
import type { Logger } from '#libs/telemetry';

/** An RFC 9457 problem document as agentmesh returns it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode | string;
  instance?: string;
  errors?: FieldProblem[];
  reason?: string;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 413: 'Content Too Large', 415: 'Unsupported Media Type', 429: 'Too Many Requests',
  500: 'Internal Server Error', 503: 'Service Unavailable',
};
const HTTP_CODES: Record<number, ErrorCode | string> = {
  400: 'invalid_argument', 401: 'unauthenticated', 403: 'permission_denied', 404: 'not_found', 405: 'method_not_allowed',
  409: 'conflict', 413: 'payload_too_large', 415: 'unsupported_media_type', 429: 'rate_limited', 500: 'internal', 503: 'unavailable',
};

export function problem(status: number, detail: string, code?: string, extra: Partial<Problem> = {}): Problem {
  const c = code ?? HTTP_CODES[status] ?? 'error';
  return { type: `https://agentmesh.dev/problems/${c.replace(/_/g, '-')}`, title: TITLES[status] ?? 'Error', status, detail, code: c, ...extra };
}

export function sendProblem(res: Response, p: Problem, headers: Record<string, string> = {}): void {
  if (res.headersSent) { res.end(); return; }
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.status(p.status).type('application/problem+json').send(JSON.stringify(p));
}

/** Maps every error to a problem document; unknown errors are logged and never echoed. */
export function toProblem(e: unknown, logger: Logger, instance?: string): { p: Problem; headers: Record<string, string> } {
  if (e instanceof AgentmeshError) {
    const headers: Record<string, string> = {};
    if (e.extra.retryAfterSeconds !== undefined) headers['Retry-After'] = String(Math.max(1, Math.ceil(e.extra.retryAfterSeconds)));
    return {
      p: problem(e.status, e.message, e.code, { instance, ...(e.extra.fields ? { errors: e.extra.fields } : {}), ...(e.extra.reason ? { reason: e.extra.reason } : {}) }),
      headers,
    };
  }
  if (e instanceof HttpException) {
    const status = e.getStatus();
    const detail = status === 404 ? 'no such resource' : e.message;
    return { p: problem(status, detail, undefined, { instance }), headers: {} };
  }
  logger.error({ err: e }, 'unhandled error');
  return { p: problem(500, 'internal error', 'internal', { instance }), headers: {} };
}

@Catch()
export class ProblemFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}
  catch(e: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request>();
    const { p, headers } = toProblem(e, this.logger, req.originalUrl?.split('?')[0]);
    sendProblem(ctx.getResponse<Response>(), p, headers);
  }
}

/** Express error handler for the body parser (runs before Nest's routing). */
export function bodyErrorHandler(limitBytes: number) {
  return (err: { type?: string; status?: number }, req: Request, res: Response, next: NextFunction): void => {
    if (!err) { next(); return; }
    const instance = req.originalUrl.split('?')[0];
    if (err.type === 'entity.too.large') sendProblem(res, problem(413, `the request body is larger than ${limitBytes} bytes`, 'payload_too_large', { instance }));
    else if (err.type === 'entity.parse.failed') sendProblem(res, problem(400, 'the request body is not valid JSON', 'invalid_argument', { instance, errors: [{ field: '/', message: 'is not valid JSON' }] }));
    else if (err.type === 'charset.unsupported' || err.type === 'encoding.unsupported') sendProblem(res, problem(415, 'unsupported body encoding', 'unsupported_media_type', { instance }));
    else sendProblem(res, problem(err.status && err.status < 500 ? err.status : 400, 'the request body could not be read', undefined, { instance }));
  };
}

/** Refuses bodies that are not JSON on methods that take one. */
export function requireJson(req: Request, res: Response, next: NextFunction): void {
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if ((req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') && hasBody && !req.is(['application/json', 'application/*+json'])) {
    sendProblem(res, problem(415, 'request bodies must be application/json', 'unsupported_media_type', { instance: req.originalUrl.split('?')[0] }));
    return;
  }
  next();
}

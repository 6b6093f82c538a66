import type { AnyJournalEvent } from '#libs/contracts';
import { ApiProblem, UnavailableError, type ProblemDocument } from './errors.js';

export type FetchFn = typeof fetch;

export interface ApiResponse<T> {
  status: number;
  body: T;
  headers: Headers;
}

const CODE_OF_STATUS: Record<number, string> = {
  400: 'invalid_argument', 401: 'unauthenticated', 403: 'permission_denied', 404: 'not_found', 405: 'method_not_allowed',
  409: 'conflict', 413: 'payload_too_large', 415: 'unsupported_media_type', 429: 'rate_limited', 500: 'internal',
  502: 'bad_gateway', 503: 'unavailable', 504: 'gateway_timeout',
};

const TERMINAL_TYPES = new Set(['run.completed', 'run.failed', 'run.cancelled']);
export const isTerminalType = (t: string): boolean => TERMINAL_TYPES.has(t);
export type RunOutcome = 'completed' | 'failed' | 'cancelled';
const outcomeOfType = (t: string): RunOutcome => t.slice('run.'.length) as RunOutcome;

/** A problem document from any error response, problem+json or not. */
export function problemOf(status: number, statusText: string, body: unknown): ProblemDocument {
  if (body && typeof body === 'object' && typeof (body as ProblemDocument).detail === 'string') {
    const p = body as Partial<ProblemDocument>;
    return { ...p, status: p.status ?? status, detail: p.detail as string, code: p.code ?? CODE_OF_STATUS[status] ?? `http_${status}` };
  }
  const text = typeof body === 'string' ? body.trim().slice(0, 200) : '';
  return {
    status,
    detail: text || `HTTP ${status}${statusText ? ` ${statusText}` : ''}`,
    code: CODE_OF_STATUS[status] ?? (status >= 500 ? 'server_error' : 'client_error'),
  };
}

/** One Server-Sent Events frame. */
export interface SseFrame {
  id?: string;
  event?: string;
  data?: string;
}

/** Incremental SSE parser (WHATWG event-stream rules: comments, CRLF, multi-line data). */
export class SseParser {
  private buf = '';
  private pendingCr = false;
  push(chunk: string): SseFrame[] {
    let text = (this.pendingCr ? '\r' : '') + chunk;
    // a CR at the end of a chunk may be the first half of a CRLF: wait for the next chunk
    this.pendingCr = text.endsWith('\r');
    if (this.pendingCr) text = text.slice(0, -1);
    this.buf += text.replace(/\r\n?/g, '\n');
    const frames: SseFrame[] = [];
    let i: number;
    while ((i = this.buf.indexOf('\n\n')) >= 0) {
      const raw = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      const f: SseFrame = {};
      const data: string[] = [];
      for (const line of raw.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        if (field === 'data') data.push(value);
        else if (field === 'id') f.id = value;
        else if (field === 'event') f.event = value;
      }
      if (data.length) f.data = data.join('\n');
      if (f.data !== undefined || f.event !== undefined) frames.push(f);
    }
    return frames;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface FollowOptions {
  /** Resume after this journal sequence (0: from the start). */
  after?: number;
  onEvent(e: AnyJournalEvent): void | Promise<void>;
  /** Consecutive failed reconnects before giving up (default 5). */
  maxRetries?: number;
  retryDelayMs?: number;
}

/** The REST client: bearer key, JSON bodies, problems thrown as ApiProblem. */
export class ApiClient {
  readonly baseUrl: string;
  constructor(baseUrl: string, private readonly key: string, private readonly fetchFn: FetchFn = fetch) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  private async send(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    try {
      return await this.fetchFn(`${this.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.key}`,
          accept: 'application/json, application/problem+json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (e instanceof Error ? e.message : String(e));
      throw new UnavailableError(`cannot reach ${this.baseUrl}: ${why}`, { cause: e });
    }
  }

  private static async bodyOf(res: Response): Promise<unknown> {
    const text = await res.text();
    if (!text) return null;
    const type = res.headers.get('content-type') ?? '';
    if (type.includes('json')) {
      try { return JSON.parse(text); } catch { return text; }
    }
    return text;
  }

  private static async fail(res: Response): Promise<ApiProblem> {
    const body = await ApiClient.bodyOf(res).catch(() => null);
    return new ApiProblem(problemOf(res.status, res.statusText, body), res.headers.get('retry-after') ?? undefined);
  }

  /** A JSON request; non-2xx responses throw ApiProblem. */
  async request<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const res = await this.send(method, path, body, headers);
    if (!res.ok) throw await ApiClient.fail(res);
    return { status: res.status, body: (await ApiClient.bodyOf(res)) as T, headers: res.headers };
  }

  /**
   * Follows a run's journal over SSE until its terminal event, resuming with Last-Event-ID when
   * the stream breaks (no loss, duplicates dropped by sequence). 4xx problems are not retried.
   */
  async followRun(tenant: string, runId: string, opts: FollowOptions): Promise<{ lastSeq: number; outcome: RunOutcome }> {
    const path = `/v1/tenants/${encodeURIComponent(tenant)}/runs/${encodeURIComponent(runId)}/events`;
    const maxRetries = opts.maxRetries ?? 5;
    const delay = opts.retryDelayMs ?? 250;
    let lastSeq = opts.after ?? 0;
    let failures = 0;
    for (;;) {
      let progressed = false;
      let lastError: unknown = null;
      try {
        const res = await this.send('GET', path, undefined, { accept: 'text/event-stream', ...(lastSeq > 0 ? { 'last-event-id': String(lastSeq) } : {}) });
        if (!res.ok) throw await ApiClient.fail(res);
        if (!res.body) throw new UnavailableError('the event stream has no body');
        const parser = new SseParser();
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          for (const f of parser.push(decoder.decode(chunk, { stream: true }))) {
            if (f.event === 'error') {
              let detail = 'the event stream was interrupted';
              try { detail = (JSON.parse(f.data ?? '{}') as { detail?: string }).detail ?? detail; } catch { /* keep the default */ }
              throw new UnavailableError(detail);
            }
            if (f.data === undefined) continue;
            const e = JSON.parse(f.data) as AnyJournalEvent;
            if (typeof e.seq === 'number' && e.seq <= lastSeq) continue;
            lastSeq = e.seq;
            progressed = true;
            await opts.onEvent(e);
            if (isTerminalType(e.type)) return { lastSeq, outcome: outcomeOfType(e.type) };
          }
        }
      } catch (e) {
        if (e instanceof ApiProblem && e.status < 500) throw e;
        if (!(e instanceof ApiProblem) && !(e instanceof UnavailableError) && !(e instanceof TypeError)) throw e;
        lastError = e;
      }
      if (!progressed && !lastError) {
        // Closed with nothing new: the run may have ended before our resume point.
        const run = await this.request<{ status: string }>('GET', `/v1/tenants/${encodeURIComponent(tenant)}/runs/${encodeURIComponent(runId)}`);
        if (['completed', 'failed', 'cancelled'].includes(run.body.status)) return { lastSeq, outcome: run.body.status as RunOutcome };
      }
      failures = progressed ? 0 : failures + 1;
      if (failures > maxRetries) {
        if (lastError instanceof ApiProblem || lastError instanceof UnavailableError) throw lastError;
        throw new UnavailableError('the event stream keeps closing before the run ends', { cause: lastError ?? undefined });
      }
      await sleep(progressed ? 0 : delay * 2 ** Math.min(failures - 1, 4));
    }
  }
}

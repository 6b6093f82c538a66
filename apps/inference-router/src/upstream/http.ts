import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/**
 * Why a call to a replica failed. `connect`, `timeout` and 5xx answers before any output mean the
 * replica (not the request) is at fault: the router marks it down and tries the session elsewhere.
 */
export type UpstreamFailure = 'connect' | 'timeout' | 'status' | 'protocol' | 'aborted';

export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  readonly code = 'upstream_failed';
  constructor(
    readonly failure: UpstreamFailure,
    message: string,
    /** The replica's HTTP status, for `status`. */
    readonly status?: number,
    /** The replica's error body (OpenAI / Anthropic error JSON), for `status`. */
    readonly body?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The replica looks broken (down, overloaded at the proxy, timing out), not the request. */
  get replicaFault(): boolean {
    return this.failure === 'connect' || this.failure === 'timeout' || (this.failure === 'status' && (this.status === 502 || this.status === 503 || this.status === 504));
  }
}

// Keep-alive pools: a turn reuses a warm connection to its replica (sessions are sticky, so are sockets).
const httpAgent = new HttpAgent({ keepAlive: true, keepAliveMsecs: 10_000, maxSockets: 1024, maxFreeSockets: 256, scheduling: 'lifo' });
const httpsAgent = new HttpsAgent({ keepAlive: true, keepAliveMsecs: 10_000, maxSockets: 1024, maxFreeSockets: 256, scheduling: 'lifo' });

export interface UpstreamRequest {
  readonly method: 'GET' | 'POST';
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** Time to the response headers (the rest is bounded by the caller's signal). */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: IncomingMessage;
}

interface ParsedUrl {
  readonly https: boolean;
  readonly protocol: string;
  readonly hostname: string;
  readonly port: number;
  readonly path: string;
}

/** Replica URLs are few and reused every call: parse each once. */
const parsed = new Map<string, ParsedUrl>();
function parse(url: string): ParsedUrl {
  let p = parsed.get(url);
  if (p === undefined) {
    const u = new URL(url);
    const https = u.protocol === 'https:';
    p = { https, protocol: u.protocol, hostname: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) || (https ? 443 : 80), path: `${u.pathname}${u.search}` };
    if (parsed.size > 10_000) parsed.clear();
    parsed.set(url, p);
  }
  return p;
}

/** One HTTP request to a replica on a keep-alive connection; resolves at the response headers. */
export function send(url: string, req: UpstreamRequest): Promise<UpstreamResponse> {
  return new Promise((resolve, reject) => {
    let u: ParsedUrl;
    try {
      u = parse(url);
    } catch (cause) {
      reject(new UpstreamError('protocol', `bad replica URL`, undefined, undefined, { cause }));
      return;
    }
    const https = u.https;
    const headers: Record<string, string | number> = { ...(req.headers ?? {}) };
    if (req.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = Buffer.byteLength(req.body);
    }
    let settled = false;
    const r = (https ? httpsRequest : httpRequest)(
      { protocol: u.protocol, hostname: u.hostname, port: u.port, path: u.path, method: req.method, headers, agent: https ? httpsAgent : httpAgent },
      (res) => {
        settled = true;
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      },
    );
    const fail = (e: UpstreamError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
    };
    const timer = setTimeout(() => {
      fail(new UpstreamError('timeout', `no answer within ${req.timeoutMs} ms`));
      r.destroy();
    }, req.timeoutMs);
    r.on('error', (err) => fail(req.signal?.aborted ? new UpstreamError('aborted', 'the caller went away') : new UpstreamError('connect', `cannot reach the replica: ${(err as NodeJS.ErrnoException).code ?? err.message}`, undefined, undefined, { cause: err })));
    if (req.signal) {
      if (req.signal.aborted) {
        r.destroy();
        fail(new UpstreamError('aborted', 'the caller went away'));
        return;
      }
      const onAbort = () => r.destroy();
      req.signal.addEventListener('abort', onAbort, { once: true });
      r.once('close', () => req.signal!.removeEventListener('abort', onAbort));
    }
    r.end(req.body);
  });
}

/** Reads a whole body (at most `limit` bytes). Event-based: cheaper than an async iterator per call. */
export function readBody(res: IncomingMessage, limit = 64 * 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    res.on('data', (b: Buffer) => {
      size += b.length;
      if (size > limit) {
        res.destroy();
        reject(new UpstreamError('protocol', `the answer is larger than ${limit} bytes`));
        return;
      }
      parts.push(b);
    });
    res.once('end', () => resolve(parts.length === 1 ? parts[0] : Buffer.concat(parts)));
    res.once('error', (err) => reject(new UpstreamError('connect', `the connection failed while reading: ${err.message}`, undefined, undefined, { cause: err })));
    res.once('aborted', () => reject(new UpstreamError('connect', 'the connection closed while reading')));
  });
}

/** Reads a JSON body; a non-JSON body is a protocol error. */
export async function readJson(res: IncomingMessage): Promise<unknown> {
  const buf = await readBody(res);
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (cause) {
    throw new UpstreamError('protocol', 'the replica answered with something that is not JSON', undefined, undefined, { cause });
  }
}

/** Turns a non-2xx answer into an UpstreamError carrying the replica's error body. */
export async function failure(res: UpstreamResponse): Promise<UpstreamError> {
  let body: unknown;
  try {
    const text = (await readBody(res.body, 1024 * 1024)).toString('utf8');
    try {
      body = JSON.parse(text);
    } catch {
      body = text.slice(0, 500);
    }
  } catch {
    body = undefined;
  }
  return new UpstreamError('status', `the replica answered HTTP ${res.status}`, res.status, body);
}

export interface SseEvent {
  readonly event?: string;
  readonly data: string;
}

/** Server-Sent Events of a response body, event by event. */
export async function* sseEvents(res: IncomingMessage): AsyncGenerator<SseEvent> {
  res.setEncoding('utf8');
  let buf = '';
  for await (const chunk of res) {
    buf += chunk as string;
    for (;;) {
      const end = frameEnd(buf);
      if (end === undefined) break;
      const frame = buf.slice(0, end.at);
      buf = buf.slice(end.at + end.len);
      const ev = parseFrame(frame);
      if (ev !== undefined) yield ev;
    }
  }
  const last = parseFrame(buf);
  if (last !== undefined) yield last;
}

function frameEnd(buf: string): { at: number; len: number } | undefined {
  const a = buf.indexOf('\n\n');
  const b = buf.indexOf('\r\n\r\n');
  if (a < 0 && b < 0) return undefined;
  if (b >= 0 && (a < 0 || b < a)) return { at: b, len: 4 };
  return { at: a, len: 2 };
}

function parseFrame(frame: string): SseEvent | undefined {
  let event: string | undefined;
  const data: string[] = [];
  for (const raw of frame.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || line.startsWith(':')) continue;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
  }
  if (data.length === 0) return undefined;
  return event === undefined ? { data: data.join('\n') } : { event, data: data.join('\n') };
}

import type { CliIO } from '../cli.js';
import type { FetchFn } from '../client.js';

/** A stream that keeps what is written to it. */
export class Captured {
  text = '';
  constructor(readonly isTTY = false) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

export interface Memory {
  io: CliIO;
  stdout: Captured;
  stderr: Captured;
}

/** In-memory streams for runCli. */
export function memoryIO(opts: { env?: Record<string, string>; fetch?: FetchFn; tty?: boolean; cwd?: string; stdin?: string } = {}): Memory {
  const stdout = new Captured(opts.tty ?? false);
  const stderr = new Captured(false);
  const stdin = opts.stdin;
  return {
    stdout, stderr,
    io: {
      stdout, stderr, env: opts.env ?? {}, fetch: opts.fetch, cwd: opts.cwd,
      ...(stdin !== undefined ? { stdin: (async function* () { yield stdin; })() } : {}),
    },
  };
}

export interface Recorded {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

type Reply = Response | ((req: Recorded) => Response | Promise<Response>);

/**
 * A scripted fetch: each route (`'GET /v1/...'`, matched on the path without the query) answers
 * with the next reply in its list (the last one repeats). Every request is recorded.
 */
export function fakeFetch(routes: Record<string, Reply | Reply[]>): { fetch: FetchFn; requests: Recorded[] } {
  const requests: Recorded[] = [];
  const used = new Map<string, number>();
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    const method = init?.method ?? 'GET';
    const headers = Object.fromEntries(Object.entries((init?.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]));
    const req: Recorded = { method, url: url.toString(), headers, body: init?.body ? JSON.parse(String(init.body)) : undefined };
    requests.push(req);
    const key = `${method} ${url.pathname}`;
    const route = routes[key];
    if (!route) return problemResponse(404, 'no such resource', 'not_found');
    const list = Array.isArray(route) ? route : [route];
    const i = used.get(key) ?? 0;
    used.set(key, i + 1);
    const reply = list[Math.min(i, list.length - 1)];
    return typeof reply === 'function' ? reply(req) : reply.clone();
  }) as FetchFn;
  return { fetch: fetchFn, requests };
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

export function problemResponse(status: number, detail: string, code: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ type: `https://agentmesh.dev/problems/${code}`, title: 'x', status, detail, code, ...extra }), {
    status, headers: { 'content-type': 'application/problem+json', ...headers },
  });
}

/** An SSE response of journal events; `breakAfter` ends the stream early (no terminal event). */
export function sse(events: Array<Record<string, unknown>>, opts: { chunkSize?: number; errorFrame?: boolean } = {}): Response {
  let text = ': agentmesh run events\n\n';
  for (const e of events) text += `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
  if (opts.errorFrame) text += `event: error\ndata: ${JSON.stringify({ code: 'unavailable', detail: 'the event stream was interrupted; resume with Last-Event-ID' })}\n\n`;
  const bytes = new TextEncoder().encode(text);
  const size = opts.chunkSize ?? 7;
  return new Response(new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += size) c.enqueue(bytes.slice(i, i + size));
      c.close();
    },
  }), { status: 200, headers: { 'content-type': 'text/event-stream' } });
}

const AT = (ms: number) => new Date(Date.UTC(2025, 0, 1, 12, 0, 0, ms)).toISOString();

/** A journal of a two-step graph run, ending as asked. */
export function graphJournal(end: 'completed' | 'failed' | 'cancelled' = 'completed', runId = 'run_01J0000000000000000000000A', tenantId = 'acme'): Array<Record<string, unknown>> {
  const agent = {
    name: 'hello', version: '1', planner: 'graph', tools: ['echo', 'transform'], limits: {},
    steps: [{ id: 'greet', tool: 'echo', args: { text: 'Hello, {{input.name}}!' } }, { id: 'shout', tool: 'transform', args: { text: '{{steps.greet.result.text}}', op: 'upper' } }],
  };
  const cost = { usd: 0, inputTokens: 0, outputTokens: 0 };
  const ev = (seq: number, type: string, step: number, data: unknown) => ({ seq, runId, tenantId, type, at: AT(seq * 10), step, data });
  const k = (s: number) => `${runId}:${s}:0`;
  const out = [
    ev(1, 'run.created', 0, { agent, input: { name: 'Ada' } }),
    ev(2, 'run.started', 0, { tools: { echo: { name: 'echo', version: '1', riskTier: 'read' }, transform: { name: 'transform', version: '1', riskTier: 'read' } } }),
    ev(3, 'step.started', 1, { kind: 'tool', stepId: 'greet', tool: 'echo', args: { text: 'Hello, Ada!' } }),
    ev(4, 'tool.called', 1, { callKey: k(1), tool: 'echo', version: '1', riskTier: 'read' }),
    ev(5, 'tool.completed', 1, { callKey: k(1), result: { text: 'Hello, Ada!' }, durationMs: 12 }),
    ev(6, 'step.started', 2, { kind: 'tool', stepId: 'shout', tool: 'transform', args: { text: 'Hello, Ada!', op: 'upper' } }),
    ev(7, 'tool.called', 2, { callKey: k(2), tool: 'transform', version: '1', riskTier: 'read' }),
  ];
  if (end === 'completed') out.push(ev(8, 'tool.completed', 2, { callKey: k(2), result: { text: 'HELLO, ADA!' }, durationMs: 3 }), ev(9, 'run.completed', 2, { output: { text: 'HELLO, ADA!' }, cost }));
  if (end === 'failed') {
    out.push(ev(8, 'tool.failed', 2, { callKey: k(2), error: { code: 'bad_args', message: 'op is wrong' }, durationMs: 1500 }),
      ev(9, 'run.failed', 2, { error: { code: 'tool_error', message: 'step shout (transform) failed: op is wrong' }, cost }));
  }
  if (end === 'cancelled') {
    out.push(ev(8, 'run.cancel_requested', 2, { reason: 'enough' }), ev(9, 'tool.completed', 2, { callKey: k(2), result: { text: 'HELLO, ADA!' }, durationMs: 3 }),
      ev(10, 'run.cancelled', 2, { reason: 'cancelled by request', cost }));
  }
  return out;
}

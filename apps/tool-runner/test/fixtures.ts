import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import * as z from 'zod';

/** A real MCP server (SDK McpServer + StreamableHTTPServerTransport, stateless) on a free loopback port. */
export interface McpFixture {
  url: string;
  port: number;
  /** What `lookup` is described as; change it to pull the rug. */
  lookupDescription: string;
  /** Tool calls received, per tool name. */
  calls: Map<string, number>;
  /** The `_meta` idempotency keys received, in order. */
  keys: string[];
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  let s = '';
  for await (const c of req) s += c;
  return s ? JSON.parse(s) : undefined;
}

export async function startMcpServer(): Promise<McpFixture> {
  const fx: McpFixture = {
    url: '', port: 0, lookupDescription: 'Looks a word up', calls: new Map(), keys: [],
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
  const count = (name: string, meta: Record<string, unknown> | undefined) => {
    fx.calls.set(name, (fx.calls.get(name) ?? 0) + 1);
    const k = meta?.['dev.agentmesh/idempotency-key'];
    if (typeof k === 'string') fx.keys.push(k);
  };
  const build = () => {
    const mcp = new McpServer({ name: 'fixture', version: '1.0.0' });
    mcp.registerTool('lookup', { description: fx.lookupDescription, inputSchema: { word: z.string() } }, async ({ word }, extra) => {
      count('lookup', extra._meta);
      return { content: [{ type: 'text', text: `${word}: a word` }], structuredContent: { word, meaning: 'a word', length: word.length } };
    });
    mcp.registerTool('say', { description: 'Says something', inputSchema: { text: z.string() } }, async ({ text }, extra) => {
      count('say', extra._meta);
      return { content: [{ type: 'text', text: `said ${text}` }] };
    });
    mcp.registerTool('broken', { description: 'Always fails', inputSchema: {} }, async (_args, extra) => {
      count('broken', extra._meta);
      return { isError: true, content: [{ type: 'text', text: 'the widget is on fire' }] };
    });
    mcp.registerTool('big', { description: 'Returns a large result', inputSchema: { kib: z.number() } }, async ({ kib }, extra) => {
      count('big', extra._meta);
      return { content: [{ type: 'text', text: 'x'.repeat(kib * 1024) }] };
    });
    return mcp;
  };
  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    if (req.url !== '/mcp') { res.writeHead(404).end(); return; }
    if (req.method !== 'POST') { res.writeHead(405, { allow: 'POST' }).end(); return; }
    const mcp = build();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => { void transport.close(); void mcp.close(); });
    try {
      await mcp.connect(transport);
      await transport.handleRequest(req, res, await readBody(req));
    } catch {
      if (!res.headersSent) res.writeHead(500).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  fx.port = (server.address() as { port: number }).port;
  fx.url = `http://127.0.0.1:${fx.port}/mcp`;
  return fx;
}

/** A plain HTTP tool server: `/json` answers `{ok, args}`, `/redirect?to=URL` a 307 to URL, `/big?kib=N` N KiB of JSON. */
export interface HttpFixture {
  url: string;
  port: number;
  /** Requests per Idempotency-Key. */
  calls: Map<string, number>;
  close(): Promise<void>;
}

export async function startHttpServer(): Promise<HttpFixture> {
  const fx: HttpFixture = {
    url: '', port: 0, calls: new Map(),
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
  const server: Server = createServer(async (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const key = String(req.headers['idempotency-key'] ?? '');
    fx.calls.set(key, (fx.calls.get(key) ?? 0) + 1);
    const body = (await readBody(req).catch(() => undefined)) as { args?: unknown } | undefined;
    if (u.pathname === '/redirect') {
      res.writeHead(307, { location: u.searchParams.get('to') ?? '/' }).end();
    } else if (u.pathname === '/big') {
      const kib = Number(u.searchParams.get('kib') ?? '1');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data: 'y'.repeat(kib * 1024) }));
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, host: req.headers.host, args: body?.args ?? null }));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  fx.port = (server.address() as { port: number }).port;
  fx.url = `http://127.0.0.1:${fx.port}`;
  return fx;
}

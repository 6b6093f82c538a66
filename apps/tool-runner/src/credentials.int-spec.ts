import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import * as z from 'zod';
import type { NatsConnection } from '@nats-io/transport-node';
import type { CommandMap, CredentialInput, JsonValue, ToolRegistration } from '#libs/contracts';
import { connectNats, RpcClient, startService, type RunningService } from '#libs/messaging';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { credentialBroker } from '../../credential-broker/src/service.js';
import { ToolExecutor } from './executor.service.js';
import { guardedFetch } from './guarded-fetch.js';
import { toolRunner } from './service.js';

const noWork = { working: () => undefined };
let seq = 0;
const newRunId = () => `run_01K${String(++seq).padStart(23, '0')}`;

interface Seen { port: number; path: string; headers: IncomingHttpHeaders }

/** A tool server that records every request's headers; `/echo` answers them back, `/deny` quotes them in a 401. */
async function startRecorder(seen: Seen[]): Promise<{ server: Server; port: number; url: string; failNext: number }> {
  const state = { server: null as unknown as Server, port: 0, url: '', failNext: 0 };
  state.server = createServer(async (req, res) => {
    for await (const _ of req) { /* drain */ }
    const u = new URL(req.url ?? '/', 'http://x');
    seen.push({ port: state.port, path: u.pathname, headers: req.headers });
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (state.failNext > 0) { state.failNext--; json(503, { error: 'busy' }); return; }
    if (u.pathname === '/redirect') { res.writeHead(307, { location: u.searchParams.get('to') ?? '/' }).end(); return; }
    if (u.pathname === '/deny') { res.writeHead(401).end(`bad credentials: ${req.headers.authorization ?? req.headers['x-api-key'] ?? ''}`); return; }
    if (u.pathname === '/echo') { json(200, { saw: { authorization: req.headers.authorization ?? null, key: req.headers['x-api-key'] ?? null } }); return; }
    json(200, { ok: true });
  });
  await new Promise<void>((r) => state.server.listen(0, '127.0.0.1', () => r()));
  state.port = (state.server.address() as { port: number }).port;
  state.url = `http://127.0.0.1:${state.port}`;
  return state;
}

/** An MCP server that records the authorization header of each HTTP request of its sessions. */
async function startMcp(auth: string[]): Promise<{ server: Server; url: string; port: number }> {
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    auth.push(String(req.headers.authorization ?? ''));
    let s = '';
    for await (const c of req) s += c;
    const mcp = new McpServer({ name: 'cred-fixture', version: '1.0.0' });
    mcp.registerTool('whoami', { description: 'Says who called', inputSchema: { q: z.string() } }, async ({ q }) => ({
      content: [{ type: 'text', text: `q=${q}` }], structuredContent: { q },
    }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => { void transport.close(); void mcp.close(); });
    await mcp.connect(transport);
    await transport.handleRequest(req, res, s ? JSON.parse(s) : undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return { server, port, url: `http://127.0.0.1:${port}/mcp` };
}

describe('credential injection by the tool-runner (real nats-server, real broker)', () => {
  let srv: NatsServerHandle;
  let broker: RunningService;
  let runner: RunningService;
  let nc: NatsConnection;
  let rpc: RpcClient;
  let executor: ToolExecutor;
  let dataDir: string;
  const seen: Seen[] = [];
  const mcpAuth: string[] = [];
  let web: Awaited<ReturnType<typeof startRecorder>>;
  let other: Awaited<ReturnType<typeof startRecorder>>;
  let mcp: Awaited<ReturnType<typeof startMcp>>;
  const SECRET = `tok_canary_${Math.random().toString(36).slice(2)}`;

  beforeAll(async () => {
    srv = await startNatsServer();
    dataDir = mkdtempSync(join(tmpdir(), 'agentmesh-tr-cred-'));
    const env = { NATS_URL: srv.url, LOG_LEVEL: 'silent', AGENTMESH_DATA_DIR: dataDir };
    broker = await startService({ ...credentialBroker, env: { ...env, CREDENTIAL_BROKER_PORT: '0' } });
    runner = await startService({ ...toolRunner, env: { ...env, TOOL_RUNNER_PORT: '0' } });
    nc = await connectNats(srv.url, 'tr-cred-test');
    rpc = new RpcClient(nc, 10_000);
    executor = runner.app.get(ToolExecutor);
    web = await startRecorder(seen);
    other = await startRecorder(seen);
    mcp = await startMcp(mcpAuth);
  });
  afterAll(async () => {
    for (const s of [web?.server, other?.server, mcp?.server]) { s?.closeAllConnections(); await new Promise((r) => s ? s.close(() => r(null)) : r(null)); }
    await nc?.close();
    await runner?.close();
    await broker?.close();
    await srv?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const egress = () => [`127.0.0.1:${web.port}`, `127.0.0.1:${other.port}`, `127.0.0.1:${mcp.port}`];
  const httpTool = (name: string, path: string, credential: string, scopes?: string[]): ToolRegistration & { name: string } => ({
    name, version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'http', url: `${web.url}${path}` },
    egress: egress(), timeoutMs: 5000, credential: { name: credential, scopes: scopes ?? [] },
  });
  const putCred = (tenantId: string, name: string, c: CredentialInput) => rpc.call('credentials.put', { tenantId, name, credential: c });
  /** The command the orchestrator sends: the pinned tool (from tools.resolve) and a freshly minted delegation. */
  const command = async (tenantId: string, tool: string, args: JsonValue = {}, opts: { mint?: boolean; mintTenant?: string } = {}): Promise<CommandMap['tool.execute']> => {
    const { tools } = await rpc.call('tools.resolve', { tenantId, refs: [tool] });
    const pinned = tools[tool];
    const runId = newRunId();
    const cmd: CommandMap['tool.execute'] = { tenantId, runId, step: 1, callKey: `${runId}:1:0`, tool: pinned, args };
    if (opts.mint === false || !pinned.credential) return cmd;
    const m = await rpc.call('credentials.mint', {
      tenantId: opts.mintTenant ?? tenantId, runId, step: 1, callKey: cmd.callKey, tool: { name: pinned.name, version: pinned.version }, credential: pinned.credential,
    });
    return { ...cmd, delegation: m.delegation };
  };
  const calls = (path: string) => seen.filter((s) => s.path === path);

  it('pins the credential into the run at tools.resolve (name and scopes, never the secret)', async () => {
    await rpc.call('tools.put', { tenantId: 'acme', tool: httpTool('charge', '/echo', 'stripe', ['charges:write']) });
    const { tools } = await rpc.call('tools.resolve', { tenantId: 'acme', refs: ['charge'] });
    expect(tools.charge).toEqual({ name: 'charge', version: '1', riskTier: 'read', credential: { name: 'stripe', scopes: ['charges:write'] } });
  });

  it('sends a bearer credential in Authorization to the tool only, and keeps it out of the result', async () => {
    await putCred('acme', 'stripe', { kind: 'bearer', secret: SECRET, allowedTools: ['charge'], scopes: ['charges:write'] });
    const before = calls('/echo').length;
    const res = await executor.handle(await command('acme', 'charge'), noWork);
    expect(res).toMatchObject({ ok: true, result: { saw: { authorization: '[redacted]', key: null } } });
    expect(JSON.stringify(res)).not.toContain(SECRET);
    const req = calls('/echo').slice(before);
    expect(req).toHaveLength(1);
    expect(req[0].headers.authorization).toBe(`Bearer ${SECRET}`);
  });

  it('sends an api key in its configured header, and redacts it from an error body that quotes it', async () => {
    await putCred('acme', 'searchkey', { kind: 'api_key', secret: SECRET, allowedTools: ['search', 'search_denied'], header: 'X-API-Key' });
    await rpc.call('tools.put', { tenantId: 'acme', tool: httpTool('search', '/plain', 'searchkey') });
    await rpc.call('tools.put', { tenantId: 'acme', tool: httpTool('search_denied', '/deny', 'searchkey') });
    expect(await executor.handle(await command('acme', 'search'), noWork)).toMatchObject({ ok: true });
    const last = calls('/plain').at(-1)!;
    expect(last.headers['x-api-key']).toBe(SECRET);
    expect(last.headers.authorization).toBeUndefined();
    const denied = await executor.handle(await command('acme', 'search_denied'), noWork);
    expect(denied).toMatchObject({ ok: false, error: { code: 'http_401', message: expect.stringContaining('[redacted]') } });
    expect(JSON.stringify(denied)).not.toContain(SECRET);
  });

  it('keeps the credential for the tool origin: a redirect to another origin is followed without it', async () => {
    await rpc.call('tools.put', { tenantId: 'acme', tool: { ...httpTool('hop', `/redirect?to=${encodeURIComponent(`${other.url}/landing`)}`, 'stripe'), name: 'hop' } });
    await putCred('acme', 'stripe', { kind: 'bearer', secret: SECRET, allowedTools: ['charge', 'hop', 'retry'], scopes: ['charges:write'] });
    expect(await executor.handle(await command('acme', 'hop'), noWork)).toMatchObject({ ok: true });
    expect(calls('/redirect').at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
    const landing = calls('/landing').at(-1)!;
    expect(landing.port).toBe(other.port);
    expect(landing.headers.authorization).toBeUndefined();
  });

  it('redeems once per call and sends the header on every retry', async () => {
    await rpc.call('tools.put', { tenantId: 'acme', tool: httpTool('retry', '/retry', 'stripe') });
    web.failNext = 2;
    const before = calls('/retry').length;
    expect(await executor.handle(await command('acme', 'retry'), noWork)).toMatchObject({ ok: true });
    const attempts = calls('/retry').slice(before);
    expect(attempts).toHaveLength(3);
    expect(attempts.every((a) => a.headers.authorization === `Bearer ${SECRET}`)).toBe(true);
  });

  it('fails closed, without calling the tool, when a delegation is missing, refused, replayed, revoked or of another tenant', async () => {
    await putCred('acme', 'gated', { kind: 'bearer', secret: SECRET, allowedTools: ['gated'] });
    await rpc.call('tools.put', { tenantId: 'acme', tool: httpTool('gated', '/gated', 'gated') });
    await rpc.call('tools.put', { tenantId: 'globex', tool: httpTool('gated', '/gated', 'gated') });
    await putCred('globex', 'gated', { kind: 'bearer', secret: 'globex-secret', allowedTools: ['gated'] });

    expect(await executor.handle(await command('acme', 'gated', {}, { mint: false }), noWork))
      .toMatchObject({ ok: false, error: { code: 'credential_missing' } });
    const refusedAtMint = { ...(await command('acme', 'gated', {}, { mint: false })), credentialError: { code: 'credential_tool_not_allowed', message: 'tool gated@1 may not use credential gated' } };
    expect(await executor.handle(refusedAtMint, noWork)).toMatchObject({ ok: false, error: { code: 'credential_tool_not_allowed' } });

    const used = await command('acme', 'gated');
    expect(await executor.handle(used, noWork)).toMatchObject({ ok: true });
    const runId = newRunId();
    const replay = { ...used, runId, callKey: `${runId}:1:0` }; // the same delegation on another call
    expect(await executor.handle(replay, noWork)).toMatchObject({ ok: false, error: { code: 'delegation_replayed' } });

    // tenant B's command carrying tenant A's delegation
    const stolen = await command('acme', 'gated');
    const crossRun = newRunId();
    const cross = { ...(await command('globex', 'gated', {}, { mint: false })), runId: crossRun, callKey: `${crossRun}:1:0`, delegation: stolen.delegation };
    expect(await executor.handle(cross, noWork)).toMatchObject({ ok: false, error: { code: 'credential_wrong_tenant' } });

    const outstanding = await command('acme', 'gated');
    await rpc.call('credentials.revoke', { tenantId: 'acme', name: 'gated' });
    const revoked = await executor.handle(outstanding, noWork);
    expect(revoked).toMatchObject({ ok: false, error: { code: 'credential_revoked' } });
    expect(JSON.stringify(revoked)).not.toContain(SECRET);

    expect(calls('/gated')).toHaveLength(1); // only the one good call reached the tool
  });

  it('drops credential headers when a followed redirect (the MCP transport follows them) leaves the origin', async () => {
    const fetchGuarded = guardedFetch({ egress: egress(), sensitiveHeaders: ['X-Search-Key'] });
    const headers = { authorization: `Bearer ${SECRET}`, 'x-search-key': SECRET, 'x-other': 'kept' };
    await fetchGuarded(`${web.url}/redirect?to=${encodeURIComponent(`${other.url}/elsewhere`)}`, { method: 'GET', headers });
    const away = calls('/elsewhere').at(-1)!;
    expect(away.port).toBe(other.port);
    expect(away.headers.authorization).toBeUndefined();
    expect(away.headers['x-search-key']).toBeUndefined();
    expect(away.headers['x-other']).toBe('kept');
    await fetchGuarded(`${web.url}/redirect?to=${encodeURIComponent('/same-origin')}`, { method: 'GET', headers });
    expect(calls('/same-origin').at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
  });

  it('sends the credential to an MCP server on each request of the session', async () => {
    await putCred('acme', 'mcpkey', { kind: 'bearer', secret: SECRET, allowedTools: ['whoami'] });
    await rpc.call('tools.put', {
      tenantId: 'acme',
      tool: { name: 'whoami', version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'mcp', url: mcp.url, tool: 'whoami' }, egress: egress(), timeoutMs: 5000, credential: { name: 'mcpkey', scopes: [] } },
    });
    const registration = mcpAuth.length; // registration lists tools without a delegation
    const res = await executor.handle(await command('acme', 'whoami', { q: 'x' }), noWork);
    expect(res).toMatchObject({ ok: true, result: { q: 'x' } });
    const during = mcpAuth.slice(registration);
    expect(during.length).toBeGreaterThan(0);
    expect(during.every((a) => a === `Bearer ${SECRET}`)).toBe(true);
  });
});

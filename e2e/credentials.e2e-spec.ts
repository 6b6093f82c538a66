import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { importPKCS8, SignJWT } from 'jose';
import { AgentmeshError, STREAMS } from '#libs/contracts';
import { connectNats, RpcClient } from '#libs/messaging';
import { AgentmeshClient, AgentmeshGrpcError } from '#libs/sdk';
import { startTokenEndpoint, type TokenEndpoint } from '../apps/credential-broker/test/token-endpoint.js';
import { ROOT, SERVICES } from '../scripts/mesh.mjs';
import { eventually, followEvents, newTenant, startTestMesh, waitForRun, type Api, type Mesh, type SseEvent } from './support/harness.js';

/**
 * The orchestrator asks the broker for a delegation when it dispatches a call of a tool with a
 * credential (`withDelegation`, apps/orchestrator/src/delegations.ts, called from RunEngine's
 * dispatch), so runs that use a credential get its secret at the tool, and only there.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CANARY = `cnry${Math.random().toString(36).slice(2, 12)}`;
const BEARER = `${CANARY}-bearer-secret`;
const API_KEY = `${CANARY}-api-key`;
const CLIENT_SECRET = `${CANARY}-oauth-client-secret`;
/** The protected header every delegation starts with (base64url of {"alg","kid","typ"}). */
const DELEGATION_PREFIX = Buffer.from(JSON.stringify({ alg: 'Ed25519', kid: 'd1', typ: 'agentmesh-delegation+jwt' })).toString('base64url');

interface Seen { path: string; headers: IncomingHttpHeaders }

/** The tools' HTTP endpoint: records every request's headers, checks OAuth tokens against the token endpoint. */
async function startToolServer(seen: Seen[], oauth: () => TokenEndpoint): Promise<{ server: Server; port: number; url: string }> {
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += c;
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    seen.push({ path, headers: req.headers });
    const json = (status: number, v: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
    if (path.endsWith('/crm')) {
      const token = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
      if (!oauth().issued.has(token)) { json(401, { error: 'unknown token' }); return; }
    }
    json(200, { ok: true, path, args: (JSON.parse(body || '{}') as { args?: unknown }).args ?? null });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return { server, port, url: `http://127.0.0.1:${port}` };
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

describe('credentials: encrypted per-tenant secrets and short-lived, scoped delegations', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let nc: NatsConnection;
  let rpc: RpcClient;
  let oauth: TokenEndpoint;
  let tool: Awaited<ReturnType<typeof startToolServer>>;
  const seen: Seen[] = [];
  let a: Awaited<ReturnType<typeof newTenant>>;
  let b: Awaited<ReturnType<typeof newTenant>>;
  const grpcClients: AgentmeshClient[] = [];
  /** Every answer to a bad request, to search for the canary. */
  const errorBodies: string[] = [];
  /** What the event streams carried, to search for the canary. */
  const streamed: string[] = [];
  const runIds: string[] = [];

  const grpc = (apiKey: string) => {
    const c = new AgentmeshClient({ address: `127.0.0.1:${mesh.grpcPort}`, apiKey });
    grpcClients.push(c);
    return c;
  };
  const httpTool = (path: string, credential: string, scopes?: string[]) => ({
    version: '1', description: `http ${path}`, riskTier: 'read', inputSchema: { type: 'object' },
    transport: { kind: 'http', url: `${tool.url}${path}` }, egress: [`127.0.0.1:${tool.port}`], timeoutMs: 5000,
    credential: { name: credential, ...(scopes ? { scopes } : {}) },
  });
  const calls = (path: string) => seen.filter((s) => s.path === path);
  const run = async (api: Api, tenant: string, agent: string, input: unknown = {}) => {
    const r = await api('POST', `/v1/tenants/${tenant}/runs`, { agent, input });
    expect(r.status).toBe(201);
    runIds.push(r.body.id);
    return r.body.id as string;
  };
  /** The run's events, over SSE and over gRPC WatchRun; both are kept for the sink scan. */
  const events = async (tenant: string, key: string, runId: string): Promise<SseEvent[]> => {
    const out: SseEvent[] = [];
    await followEvents(mesh.gatewayUrl, key, `/v1/tenants/${tenant}/runs/${runId}/events`, (e) => out.push(e));
    streamed.push(JSON.stringify(out));
    const viaGrpc: unknown[] = [];
    for await (const e of grpc(key).watchRun({ tenant, runId })) viaGrpc.push(e);
    streamed.push(JSON.stringify(viaGrpc));
    return out;
  };
  const failedCode = (evs: SseEvent[]) => (evs.find((e) => e.event === 'tool.failed')?.data as { data: { error: { code: string } } } | undefined)?.data.error.code;
  const mint = (tenantId: string, toolName: string, credential: string, ttlSeconds?: number) => {
    const runId = `run_01J${String(Date.now() % 1e9).padStart(9, '0')}${String(Math.floor(Math.random() * 1e8)).padStart(14, '0')}`;
    return rpc.call('credentials.mint', {
      tenantId, runId, step: 1, callKey: `${runId}:1:0`, tool: { name: toolName, version: '1' }, credential: { name: credential, scopes: [] },
      ...(ttlSeconds ? { ttlSeconds } : {}),
    });
  };
  const redeem = (tenantId: string, toolName: string, credentialName: string, delegation: string) =>
    rpc.call('credentials.redeem', { tenantId, tool: { name: toolName, version: '1' }, credentialName, delegation });
  const refusal = async (p: Promise<unknown>) => {
    try { await p; } catch (e) { expect(e).toBeInstanceOf(AgentmeshError); return (e as AgentmeshError).extra.reason; }
    throw new Error('expected a refusal');
  };

  beforeAll(async () => {
    oauth = await startTokenEndpoint({ 'mesh-client': CLIENT_SECRET });
    tool = await startToolServer(seen, () => oauth);
    mesh = await startTestMesh();
    nc = await connectNats(mesh.natsUrl, 'credentials-e2e');
    rpc = new RpcClient(nc, 10_000);
    a = await newTenant(mesh, 'cred-a');
    b = await newTenant(mesh, 'cred-b');
  });
  afterAll(async () => {
    for (const c of grpcClients) c.close();
    await nc?.close();
    await mesh?.cleanup();
    tool?.server.closeAllConnections();
    await new Promise((r) => (tool ? tool.server.close(() => r(null)) : r(null)));
    await oauth?.close();
  });

  it('stores credentials over REST and gRPC and answers metadata only; bad requests never echo the secret', async () => {
    const put = await a.owner('PUT', `/v1/tenants/${a.id}/credentials/stripe`, { kind: 'bearer', secret: BEARER, allowedTools: ['pay'], scopes: ['charges:write'] });
    expect(put.status).toBe(201);
    expect(put.body).toEqual({ name: 'stripe', kind: 'bearer', allowedTools: ['pay'], scopes: ['charges:write'], createdAt: expect.any(String), updatedAt: expect.any(String) });
    const again = await a.owner('PUT', `/v1/tenants/${a.id}/credentials/stripe`, { kind: 'bearer', secret: BEARER, allowedTools: ['pay', 'rotating'], scopes: ['charges:write'] });
    expect(again.status).toBe(200);
    expect((await a.owner('PUT', `/v1/tenants/${a.id}/credentials/searchkey`, { kind: 'api_key', secret: API_KEY, allowedTools: ['search'], header: 'X-Search-Key' })).status).toBe(201);
    const owner = grpc(a.ownerKey);
    const viaGrpc = await owner.putCredential({
      tenant: a.id, name: 'crm', kind: 'oauth2_client_credentials', oauth2ClientCredentials: { tokenUrl: oauth.url, clientId: 'mesh-client', clientSecret: CLIENT_SECRET },
      allowedTools: ['crm'], scopes: ['contacts.read', 'contacts.write'],
    });
    expect(viaGrpc).toMatchObject({ created: true, credential: { name: 'crm', kind: 'oauth2_client_credentials', allowedTools: ['crm'] } });
    const list = await a.owner('GET', `/v1/tenants/${a.id}/credentials`);
    expect(list.status).toBe(200);
    expect(list.body.credentials.map((c: { name: string }) => c.name)).toEqual(['crm', 'searchkey', 'stripe']);
    const listed = await owner.listCredentials({ tenant: a.id });
    expect(listed.map((c) => c.name)).toEqual(['crm', 'searchkey', 'stripe']);
    for (const answer of [put.body, again.body, list.body, viaGrpc, listed]) expect(JSON.stringify(answer)).not.toContain(CANARY);

    // bad requests: every answer is kept for the final scan
    const viewer = await a.keyFor(['viewer']);
    const bad: Array<[Api, string, string, unknown, number[]]> = [
      [a.owner, 'PUT', 'stripe', { kind: 'bearer', secret: BEARER, allowedTools: [] }, [400]],
      [a.owner, 'PUT', 'stripe', { kind: 'bearer', secret: BEARER, allowedTools: ['pay'], clientSecret: BEARER }, [400]],
      [a.owner, 'PUT', 'stripe', { kind: 'bearer', secret: BEARER, allowedTools: ['pay'], [BEARER]: 1 }, [400]],
      [a.owner, 'PUT', 'stripe', { kind: 'api_key', secret: BEARER, allowedTools: ['pay'], header: `X ${BEARER}` }, [400]],
      [a.owner, 'PUT', 'stripe', { kind: `kind-${BEARER}`, secret: BEARER, allowedTools: ['pay'] }, [400]],
      [a.owner, 'PUT', 'bad.name', { kind: 'bearer', secret: BEARER, allowedTools: ['pay'] }, [404]],
      [a.owner, 'PUT', 'big', { kind: 'bearer', secret: BEARER.repeat(60_000), allowedTools: ['pay'] }, [413]],
      [viewer.api, 'PUT', 'stripe', { kind: 'bearer', secret: BEARER, allowedTools: ['pay'] }, [403]],
      [b.owner, 'PUT', 'stripe', { kind: 'bearer', secret: BEARER, allowedTools: ['pay'] }, [403, 404]],
      [a.owner, 'DELETE', 'nope', undefined, [404]],
    ];
    for (const [api, method, name, body, statuses] of bad) {
      const r = await api(method, `/v1/tenants/${a.id}/credentials/${name}`, body);
      expect({ name, status: statuses.includes(r.status) }).toEqual({ name, status: true });
      errorBodies.push(JSON.stringify(r.body));
    }
    const broken = await fetch(`${mesh.gatewayUrl}/v1/tenants/${a.id}/credentials/stripe`, {
      method: 'PUT', headers: { authorization: `Bearer ${a.ownerKey}`, 'content-type': 'application/json' }, body: `{"kind":"bearer","secret":"${BEARER}",`,
    });
    expect(broken.status).toBe(400);
    errorBodies.push(await broken.text());
    const noKey = await fetch(`${mesh.gatewayUrl}/v1/tenants/${a.id}/credentials/stripe`, {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'bearer', secret: BEARER, allowedTools: ['pay'] }),
    });
    expect(noKey.status).toBe(401);
    errorBodies.push(await noKey.text());
    for (const call of [
      () => owner.putCredential({ tenant: a.id, name: 'stripe', kind: 'bearer', secret: BEARER, allowedTools: [] }),
      () => owner.putCredential({ tenant: a.id, name: 'stripe', kind: 'api_key', oauth2ClientCredentials: { tokenUrl: 'https://x.example/t', clientId: 'c', clientSecret: BEARER }, allowedTools: ['pay'] }),
      () => grpc(viewer.key).putCredential({ tenant: a.id, name: 'stripe', kind: 'bearer', secret: BEARER, allowedTools: ['pay'] }),
    ]) {
      try { await call(); throw new Error('expected a failure'); } catch (e) {
        expect(e).toBeInstanceOf(AgentmeshGrpcError);
        errorBodies.push(JSON.stringify({ message: (e as Error).message, ...(e as object) }));
      }
    }
    for (const body of errorBodies) expect(body).not.toContain(CANARY);
  });

  it('refuses, at the broker, replayed, expired, wrong-audience and cross-tenant delegations', async () => {
    // replayed
    const once = await mint(a.id, 'pay', 'stripe');
    expect(once.delegation.startsWith(`${DELEGATION_PREFIX}.`)).toBe(true);
    expect((await redeem(a.id, 'pay', 'stripe', once.delegation)).inject).toEqual({ header: 'authorization', value: `Bearer ${BEARER}` });
    expect(await refusal(redeem(a.id, 'pay', 'stripe', once.delegation))).toBe('delegation_replayed');
    // expired
    const short = await mint(a.id, 'pay', 'stripe', 1);
    await sleep(3100);
    expect(await refusal(redeem(a.id, 'pay', 'stripe', short.delegation))).toBe('delegation_expired');
    // signed with the broker's own key, but for another audience
    const key = await importPKCS8(readFileSync(join(mesh.dataDir, 'delegation.key'), 'utf8'), 'Ed25519');
    const now = Math.floor(Date.now() / 1000);
    const wrongAud = await new SignJWT({ tid: a.id, run: 'run_01J00000000000000000000000', step: '1', tool: 'pay', tver: '1', cred: 'stripe', scope: '' })
      .setProtectedHeader({ alg: 'Ed25519', kid: 'd1', typ: 'agentmesh-delegation+jwt' }).setIssuer('agentmesh-credential-broker')
      .setAudience('agentmesh-gateway').setJti(crypto.randomUUID()).setIssuedAt(now).setExpirationTime(now + 60).sign(key);
    expect(await refusal(redeem(a.id, 'pay', 'stripe', wrongAud))).toBe('delegation_wrong_audience');
    // tenant B presenting tenant A's delegation
    const stolen = await mint(a.id, 'pay', 'stripe');
    expect(await refusal(redeem(b.id, 'pay', 'stripe', stolen.delegation))).toBe('credential_wrong_tenant');
    // and tenant B cannot have one minted for A's credential
    expect(await refusal(mint(b.id, 'pay', 'stripe'))).toBe('credential_not_found');
    // a tool not in allowedTools gets none
    expect(await refusal(mint(a.id, 'export', 'stripe'))).toBe('credential_tool_not_allowed');
  });

  it('uses the secrets in a run: each tool gets its own, in the header its kind requires', async () => {
    for (const [name, def] of [
      ['pay', httpTool('/a/pay', 'stripe', ['charges:write'])],
      ['search', httpTool('/a/search', 'searchkey')],
      ['crm', httpTool('/a/crm', 'crm', ['contacts.read'])],
    ] as const) {
      expect((await a.owner('PUT', `/v1/tenants/${a.id}/tools/${name}`, def)).status).toBe(201);
    }
    expect((await a.owner('PUT', `/v1/tenants/${a.id}/agents/payer`, {
      version: '1', planner: 'graph', tools: ['pay', 'search', 'crm'], limits: { maxSteps: 10 },
      steps: [
        { id: 'pay', tool: 'pay', args: { amount: '{{input.amount}}' } },
        { id: 'search', tool: 'search', args: { q: 'invoices' } },
        { id: 'crm', tool: 'crm', args: { contact: 'ada' } },
      ],
    })).status).toBe(201);
    const id = await run(a.owner, a.id, 'payer', { amount: '5' });
    const done = await waitForRun(a.owner, a.id, id, 30_000);
    expect(done).toMatchObject({ status: 'completed', steps: 3 });
    expect(calls('/a/pay').at(-1)!.headers.authorization).toBe(`Bearer ${BEARER}`);
    expect(calls('/a/search').at(-1)!.headers['x-search-key']).toBe(API_KEY);
    expect(calls('/a/search').at(-1)!.headers.authorization).toBeUndefined();
    const token = String(calls('/a/crm').at(-1)!.headers.authorization).replace(/^Bearer /, '');
    expect(oauth.issued.get(token)).toBe('mesh-client');
    expect(oauth.scopes.at(-1)).toBe('contacts.read');
    const evs = await events(a.id, a.ownerKey, id);
    expect(evs.filter((e) => e.event === 'tool.completed')).toHaveLength(3);
  });

  it('fails the call closed when the tool is not in the credential\'s allowedTools', async () => {
    expect((await a.owner('PUT', `/v1/tenants/${a.id}/credentials/limited`, { kind: 'bearer', secret: BEARER, allowedTools: ['other'] })).status).toBe(201);
    expect((await a.owner('PUT', `/v1/tenants/${a.id}/tools/blocked`, httpTool('/a/blocked', 'limited'))).status).toBe(201);
    expect((await a.owner('PUT', `/v1/tenants/${a.id}/agents/blocked`, {
      version: '1', planner: 'graph', tools: ['blocked'], steps: [{ id: 'go', tool: 'blocked', args: {} }],
    })).status).toBe(201);
    const id = await run(a.owner, a.id, 'blocked');
    expect(await waitForRun(a.owner, a.id, id)).toMatchObject({ status: 'failed', error: { code: 'tool_error' } });
    expect(failedCode(await events(a.id, a.ownerKey, id))).toBe('credential_tool_not_allowed');
    expect(calls('/a/blocked')).toHaveLength(0);
  });

  it("never lets a tool of tenant B use tenant A's credential", async () => {
    expect((await b.owner('PUT', `/v1/tenants/${b.id}/tools/pay`, httpTool('/b/pay', 'stripe'))).status).toBe(201);
    expect((await b.owner('PUT', `/v1/tenants/${b.id}/agents/payer`, {
      version: '1', planner: 'graph', tools: ['pay'], steps: [{ id: 'pay', tool: 'pay', args: {} }],
    })).status).toBe(201);
    const id = await run(b.owner, b.id, 'payer');
    expect(await waitForRun(b.owner, b.id, id)).toMatchObject({ status: 'failed' });
    expect(failedCode(await events(b.id, b.ownerKey, id))).toBe('credential_not_found');
    expect(calls('/b/pay')).toHaveLength(0);
  });

  it('rotates the master key with scripts/rotate-master-key.mjs while runs and redemptions go on, losing nothing', async () => {
    const before = await rpc.call('credentials.keys', {});
    expect(Object.keys(before.dataKeys)).toEqual([before.activeMasterKeyId]);
    let stop = false;
    let redeemed = 0;
    const traffic = (async () => {
      while (!stop) {
        expect((await redeem(a.id, 'pay', 'stripe', (await mint(a.id, 'pay', 'stripe')).delegation)).inject.value).toBe(`Bearer ${BEARER}`);
        redeemed++;
      }
    })();
    const runs: string[] = [];
    const starting = (async () => { for (let i = 0; i < 6; i++) { runs.push(await run(a.owner, a.id, 'payer', { amount: String(i) })); await sleep(100); } })();
    await sleep(150);
    const script = spawn(process.execPath, [join(ROOT, 'scripts/rotate-master-key.mjs'), '--retire'], {
      cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '', NATS_URL: mesh.natsUrl, AGENTMESH_DATA_DIR: mesh.dataDir, LOG_LEVEL: 'silent' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    script.stdout.on('data', (d: Buffer) => { stdout += d; });
    script.stderr.on('data', (d: Buffer) => { stderr += d; });
    const code = await new Promise<number | null>((r) => script.once('exit', r));
    await starting;
    stop = true;
    await traffic;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as { previous: string; active: string; retired: string[]; report: { failed: unknown[]; dataKeys: Record<string, number> } };
    expect(report.previous).toBe(before.activeMasterKeyId);
    expect(report.retired).toEqual([before.activeMasterKeyId]);
    expect(report.report.failed).toEqual([]);
    expect(Object.keys(report.report.dataKeys)).toEqual([report.active]);
    expect(stdout).not.toMatch(/[A-Za-z0-9+/]{43}=/); // no key material printed
    expect(redeemed).toBeGreaterThan(0);
    expect(statSync(join(mesh.dataDir, 'master.keys')).mode & 0o777).toBe(0o600);
    for (const id of runs) expect(await waitForRun(a.owner, a.id, id, 30_000)).toMatchObject({ status: 'completed', steps: 3 });
    expect(await rpc.call('credentials.keys', {})).toEqual({ activeMasterKeyId: report.active, masterKeyIds: [report.active], dataKeys: { [report.active]: expect.any(Number) } });

    // a broker started afresh holds only the new key and still reads every secret
    await mesh.restart('credential-broker');
    await eventually(async () => (await redeem(a.id, 'pay', 'stripe', (await mint(a.id, 'pay', 'stripe')).delegation)).inject.value === `Bearer ${BEARER}`, 'the restarted broker');
    const id = await run(a.owner, a.id, 'payer', { amount: '7' });
    expect(await waitForRun(a.owner, a.id, id, 30_000)).toMatchObject({ status: 'completed' });
    expect(calls('/a/pay').at(-1)!.headers.authorization).toBe(`Bearer ${BEARER}`);
    expect(calls('/a/search').at(-1)!.headers['x-search-key']).toBe(API_KEY);
  });

  it('revoking a credential makes the next call fail closed with credential_revoked', async () => {
    const before = calls('/a/pay').length;
    const del = await a.owner('DELETE', `/v1/tenants/${a.id}/credentials/stripe`);
    expect(del.status).toBe(204);
    expect((await a.owner('GET', `/v1/tenants/${a.id}/credentials`)).body.credentials.map((c: { name: string }) => c.name)).not.toContain('stripe');
    const id = await run(a.owner, a.id, 'payer', { amount: '9' });
    expect(await waitForRun(a.owner, a.id, id)).toMatchObject({ status: 'failed', error: { code: 'tool_error' } });
    expect(failedCode(await events(a.id, a.ownerKey, id))).toBe('credential_revoked');
    expect(calls('/a/pay').length).toBe(before);
  });

  it('the secrets appear only at the tools: not in the journal, the event streams, any log, any /metrics, any error body or any file at rest', async () => {
    // positive control: the canary did reach the tool endpoint, so searching for it means something
    expect(seen.some((s) => JSON.stringify(s.headers).includes(CANARY))).toBe(true);
    const tokens = [...oauth.issued.keys()];
    const forbidden = [CANARY, ...tokens];
    const clean = (where: string, text: string) => {
      for (const f of forbidden) expect({ where, leaked: text.includes(f) }).toEqual({ where, leaked: false });
      expect({ where, delegation: text.includes(DELEGATION_PREFIX) }).toEqual({ where, delegation: false });
    };

    // the whole journal stream, headers included
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(STREAMS.journal.name);
    expect(info.state.messages).toBeGreaterThan(0);
    let journal = '';
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(STREAMS.journal.name, { seq }).catch(() => null);
      if (!m) continue;
      journal += `${m.subject} ${new TextDecoder().decode(m.data)} ${JSON.stringify(m.header ? [...m.header.keys()].map((k) => [k, m.header!.get(k)]) : [])}\n`;
    }
    clean('journal', journal);
    expect(journal).toContain('credential_revoked');

    // SSE and gRPC WatchRun of every run, read again now that all have ended
    for (const id of runIds) {
      const tenant = (await a.owner('GET', `/v1/tenants/${a.id}/runs/${id}`)).status === 200 ? a : b;
      await events(tenant.id, tenant.ownerKey, id);
    }
    clean('event streams', streamed.join('\n'));

    // every service's log and /metrics
    for (const svc of SERVICES) {
      clean(`${svc} log`, readFileSync(mesh.logFile(svc)!, 'utf8'));
      clean(`${svc} /metrics`, await (await fetch(`http://127.0.0.1:${mesh.ports[svc]}/metrics`)).text());
    }
    clean('error bodies', errorBodies.join('\n'));

    // at rest: every file of the data folder (JetStream store, logs, keys)
    const files = filesUnder(mesh.dataDir);
    expect(files.some((f) => f.includes(`${join('nats', 'jetstream')}`) || f.includes('nats'))).toBe(true);
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const s of forbidden) expect({ file: f, leaked: bytes.includes(s) }).toEqual({ file: f, leaked: false });
    }
  });
});

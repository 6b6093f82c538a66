import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import mongoose from 'mongoose';
import { BUCKETS } from '#libs/contracts';
import { connectNats, openBucket } from '#libs/messaging';
// test-only launcher of the in-memory MongoDB-wire server (libs/store's contract suite uses it too)
import { jongodbBinary, startJongodb, type MongoServerHandle } from '../libs/store/src/test/jongodb.js';
import { client, eventually, followEvents, newTenant, startTestMesh, waitForRun, type Api, type Mesh, type SseEvent } from './support/harness.js';

const ECHO = { version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'builtin', name: 'echo' } };
const HELLO = { version: '1', planner: 'graph', tools: ['echo'], steps: [{ id: 'greet', tool: 'echo', args: { text: 'Hello, {{input.name}}!' } }] };
const DB = 'agentmesh';

const jongodb = jongodbBinary();
const suite = 'bin' in jongodb ? describe : describe.skip;
if ('missing' in jongodb) console.warn(`store-mongo e2e skipped: ${jongodb.missing}`);

suite(`the mesh on the MongoDB store (MONGODB_URI at jongodb)${'missing' in jongodb ? ` (skipped: ${jongodb.missing})` : ''}`, () => {
  let mongo: MongoServerHandle;
  let mesh: Mesh & { cleanup(): Promise<void> };
  let admin: Api;
  let api: Api;
  let t: string;
  /** Documents of one collection of the store's database, read straight from the server. */
  const docs = async (collection: string, filter: Record<string, unknown>): Promise<Array<Record<string, unknown>>> => {
    const conn = await mongoose.createConnection(`${mongo.uri}/${DB}`, { serverSelectionTimeoutMS: 3000 }).asPromise();
    try {
      return await conn.collection(collection).find(filter).toArray();
    } finally {
      await conn.close();
    }
  };

  beforeAll(async () => {
    mongo = await startJongodb();
    mesh = await startTestMesh({ MONGODB_URI: `${mongo.uri}/${DB}`, MONGODB_SERVER_SELECTION_TIMEOUT: '1s' });
    admin = client(mesh.gatewayUrl, mesh.adminKey);
  });
  afterAll(async () => {
    await mesh?.cleanup();
    await mongo?.stop();
  });

  it('runs the basic scenario: tenant, key, agent, run, runs listed and filtered by status from MongoDB', async () => {
    const tenant = await newTenant(mesh, 'mgo');
    api = tenant.owner; t = tenant.id;
    expect((await api('PUT', `/v1/tenants/${t}/tools/echo`, ECHO)).status).toBe(201);
    expect((await api('PUT', `/v1/tenants/${t}/agents/hello`, HELLO)).status).toBe(201);
    expect((await api('PUT', `/v1/tenants/${t}/agents/hello`, HELLO)).status).toBe(200);
    expect((await api('PUT', `/v1/tenants/${t}/agents/hello`, { ...HELLO, steps: [{ id: 'greet', tool: 'echo', args: { text: 'other' } }] })).status).toBe(409);
    expect((await api('GET', `/v1/tenants/${t}/agents`)).body.agents.map((a: { name: string }) => a.name)).toEqual(['hello']);

    const res = await api('POST', `/v1/tenants/${t}/runs`, { agent: 'hello', input: { name: 'Ada' } });
    expect(res.status).toBe(201);
    const run = await waitForRun(api, t, res.body.id);
    expect(run).toMatchObject({ status: 'completed', output: { text: 'Hello, Ada!' } });

    // the projector in the orchestrator brings the row to `completed`
    const completed = await eventually(async () => {
      const r = await api('GET', `/v1/tenants/${t}/runs?status=completed`);
      return r.status === 200 && r.body.runs.length === 1 ? r.body : null;
    }, 'the run index to list the completed run');
    expect(completed).toMatchObject({ runs: [{ id: run.id, agent: 'hello', status: 'completed', steps: 1, tenantId: t }], nextCursor: null });
    expect((await api('GET', `/v1/tenants/${t}/runs?status=failed`)).body).toEqual({ runs: [], nextCursor: null });
    expect((await api('GET', `/v1/tenants/${t}/runs?agent=hello`)).body.runs.map((r: { id: string }) => r.id)).toEqual([run.id]);

    // and it is all in MongoDB (the KV buckets are not the store here)
    expect(await docs('tenants', { tenantId: t })).toHaveLength(1);
    expect(await docs('api_keys', { tenantId: t })).toHaveLength(1);
    expect(await docs('agent_versions', { tenantId: t })).toHaveLength(1);
    expect(await docs('run_index', { tenantId: t })).toEqual([expect.objectContaining({ id: run.id, status: 'completed' })]);
    expect((await docs('checkpoints', { _id: 'run-index' }))[0]).toMatchObject({ seq: expect.any(Number) });
    // the tool catalog (tool-runner) and its disable flag, and the audit search model (gateway's projector)
    expect(await docs('tool_versions', { tenantId: t })).toEqual([expect.objectContaining({ name: 'echo', version: ECHO.version })]);
    expect((await api('POST', `/v1/tenants/${t}/tools/echo/disable`, {})).status).toBe(200);
    expect(await docs('tool_latest', { tenantId: t, name: 'echo' })).toEqual([expect.objectContaining({ disabled: true, disabledReason: 'manual' })]);
    expect((await api('GET', `/v1/tenants/${t}/tools`)).body.tools).toEqual([expect.objectContaining({ name: 'echo', disabled: true })]);
    const blocked = await api('POST', `/v1/tenants/${t}/runs`, { agent: 'hello', input: { name: 'Bob' } });
    expect(await waitForRun(api, t, blocked.body.id)).toMatchObject({ status: 'failed' });
    expect((await api('POST', `/v1/tenants/${t}/tools/echo/enable`, {})).status).toBe(200);
    const audited = await eventually(async () => {
      const r = await api('GET', `/v1/tenants/${t}/audit?action=tools.disable`);
      return r.status === 200 && r.body.entries.length === 1 ? r.body : null;
    }, 'the audit search model to hold the disable');
    expect(audited.entries[0]).toMatchObject({ action: 'tools.disable', resource: expect.stringContaining('echo') });
    expect(await docs('audit', { tenantId: t, action: 'tools.disable' })).toHaveLength(1);
    // the budget document (cost-governor) is in MongoDB too
    expect((await api('PUT', `/v1/tenants/${t}/budget`, { limitUsd: 100, period: 'month' })).status).toBe(200);
    expect((await api('GET', `/v1/tenants/${t}/budget`)).body).toMatchObject({ limitUsd: 100, period: 'month' });
    expect(await docs('budgets', { tenantId: t })).toEqual([expect.objectContaining({ rev: expect.any(Number) })]);

    // a session's history (gateway): two runs in one session, read back, stored in session_runs with its TTL field
    const sessionRuns: string[] = [];
    for (const name of ['Cy', 'Di']) {
      const r = await api('POST', `/v1/tenants/${t}/runs`, { agent: 'hello', input: { name }, sessionId: 'mgo-chat' });
      expect(r.status).toBe(201);
      sessionRuns.push(r.body.id);
      await waitForRun(api, t, r.body.id);
    }
    const session = await eventually(async () => {
      const r = await api('GET', `/v1/tenants/${t}/sessions/mgo-chat`);
      return r.status === 200 && r.body.runs.every((x: { status: string }) => x.status === 'completed') ? r.body : null;
    }, 'the session to show two completed runs');
    expect(session.runs.map((r: { runId: string }) => r.runId)).toEqual(sessionRuns);
    expect(session.runs[1]).toMatchObject({ agent: 'hello', status: 'completed', input: '{"name":"Di"}', output: '{"text":"Hello, Di!"}', error: null });
    expect(Date.parse(session.expiresAt) - Date.parse(session.updatedAt)).toBe(24 * 3_600_000);
    const [stored] = await docs('session_runs', { tenantId: t, sessionId: 'mgo-chat' });
    expect(stored.runs).toEqual(sessionRuns.map((runId) => expect.objectContaining({ runId, status: 'completed' })));
    expect(stored.expiresAt).toBeInstanceOf(Date);
    expect(Date.parse(session.expiresAt)).toBeLessThanOrEqual((stored.expiresAt as Date).getTime());
    expect((await api('GET', `/v1/tenants/${t}/sessions/never-used`)).status).toBe(404);

    // tenant policy rules live in MongoDB too, and take effect: a viewer denied runs.list is refused
    const viewer = await tenant.keyFor(['viewer']);
    const deny = { kind: 'permission', subject: `key:${viewer.id}`, operation: 'runs.list', effect: 'deny' };
    expect((await api('PUT', `/v1/tenants/${t}/policy`, { revision: 0, rules: [deny] })).status).toBe(200);
    const [policy] = await docs('policies', { tenantId: t });
    expect(JSON.parse(policy.rules as string)).toEqual([expect.objectContaining({ subject: `key:${viewer.id}`, operation: 'runs.list', effect: 'deny' })]);
    expect((await viewer.api('GET', `/v1/tenants/${t}/runs`)).status).toBe(403);
    const current = (await api('GET', `/v1/tenants/${t}/policy`)).body;
    expect((await api('PUT', `/v1/tenants/${t}/policy`, { revision: current.revision, rules: [] })).status).toBe(200);

    // a revoked key is refused at once by the gateway that revoked it
    expect((await viewer.api('GET', `/v1/tenants/${t}/runs`)).status).toBe(200);
    expect((await admin('DELETE', `/v1/tenants/${t}/api-keys/${viewer.id}`)).status).toBe(204);
    expect((await viewer.api('GET', `/v1/tenants/${t}/runs`)).status).toBe(401);
  });

  it('keeps credentials in MongoDB as ciphertext: stored over REST, used in a run, revoked, the next call fails closed', async () => {
    const SECRET = `mgo-canary-${Math.random().toString(36).slice(2, 12)}`;
    const seen: IncomingHttpHeaders[] = [];
    const tool: Server = createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    });
    await new Promise<void>((r) => tool.listen(0, '127.0.0.1', () => r()));
    const port = (tool.address() as { port: number }).port;
    const nc = await connectNats(mesh.natsUrl, 'store-mongo-credentials');
    try {
      const c = await newTenant(mesh, 'mgo-cred');
      const owner = c.owner;
      const put = await owner('PUT', `/v1/tenants/${c.id}/credentials/stripe`, { kind: 'bearer', secret: SECRET, allowedTools: ['pay'] });
      expect(put.status).toBe(201);
      expect(JSON.stringify(put.body)).not.toContain(SECRET);
      expect((await owner('PUT', `/v1/tenants/${c.id}/credentials/stripe`, { kind: 'bearer', secret: SECRET, allowedTools: ['pay'] })).status).toBe(200);
      expect((await owner('GET', `/v1/tenants/${c.id}/credentials`)).body.credentials.map((x: { name: string }) => x.name)).toEqual(['stripe']);
      expect((await owner('PUT', `/v1/tenants/${c.id}/tools/pay`, {
        version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'http', url: `http://127.0.0.1:${port}/pay` },
        egress: [`127.0.0.1:${port}`], timeoutMs: 5000, credential: { name: 'stripe' },
      })).status).toBe(201);
      expect((await owner('PUT', `/v1/tenants/${c.id}/agents/payer`, {
        version: '1', planner: 'graph', tools: ['pay'], steps: [{ id: 'pay', tool: 'pay', args: { amount: '5' } }],
      })).status).toBe(201);

      // stored in MongoDB, envelope and metadata only; not in the KV bucket
      const [stored] = await docs('credentials', { tenantId: c.id, name: 'stripe' });
      expect(stored).toMatchObject({ tenantId: c.id, name: 'stripe', secret: { v: 1, alg: 'A256GCM' }, metadata: { kind: 'bearer', allowedTools: ['pay'] }, revokedAt: null });
      expect(Object.keys(stored).sort()).toEqual(['_id', 'createdAt', 'metadata', 'name', 'revokedAt', 'secret', 'tenantId', 'updatedAt']);
      expect(await (await openBucket(nc, BUCKETS.credentials)).get(`${c.id}.stripe`)).toBeNull();

      const ok = await owner('POST', `/v1/tenants/${c.id}/runs`, { agent: 'payer', input: {} });
      expect(await waitForRun(owner, c.id, ok.body.id, 30_000)).toMatchObject({ status: 'completed' });
      expect(seen.at(-1)?.authorization).toBe(`Bearer ${SECRET}`);

      expect((await owner('DELETE', `/v1/tenants/${c.id}/credentials/stripe`)).status).toBe(204);
      expect((await owner('GET', `/v1/tenants/${c.id}/credentials`)).body.credentials).toEqual([]);
      const before = seen.length;
      const denied = await owner('POST', `/v1/tenants/${c.id}/runs`, { agent: 'payer', input: {} });
      expect(await waitForRun(owner, c.id, denied.body.id, 30_000)).toMatchObject({ status: 'failed', error: { code: 'tool_error' } });
      const evs: SseEvent[] = [];
      await followEvents(mesh.gatewayUrl, c.ownerKey, `/v1/tenants/${c.id}/runs/${denied.body.id}/events`, (e) => evs.push(e));
      const failed = evs.find((e) => e.event === 'tool.failed')?.data as { data: { error: { code: string } } } | undefined;
      expect(failed?.data.error.code).toBe('credential_revoked');
      expect(seen.length).toBe(before);

      // the revocation left a tombstone without the ciphertext; the secret is nowhere in the collection
      const [tombstone] = await docs('credentials', { tenantId: c.id, name: 'stripe' });
      expect(tombstone).toMatchObject({ revokedAt: expect.any(String) });
      expect(tombstone).not.toHaveProperty('secret');
      for (const collection of ['credentials', 'audit', 'run_index']) {
        expect(JSON.stringify(await docs(collection, {}))).not.toContain(SECRET);
      }
    } finally {
      await nc.close();
      tool.closeAllConnections();
      await new Promise((r) => tool.close(() => r(null)));
    }
  });

  it('answers 503 problem+json while MongoDB is down and serves again once it is back', async () => {
    await mongo.kill();
    try {
      const started = Date.now();
      const down = await api('GET', `/v1/tenants/${t}/runs`);
      expect(down.status).toBe(503);
      expect(down.headers.get('content-type')).toContain('application/problem+json');
      expect(down.body).toMatchObject({ status: 503, code: 'unavailable' });
      expect(Date.now() - started).toBeLessThan(5000);
      const create = await admin('POST', '/v1/tenants', { id: `mgo-down-${process.pid}` });
      expect(create.status).toBe(503);
      expect(create.headers.get('content-type')).toContain('application/problem+json');
    } finally {
      await mongo.restart(); // jongodb keeps nothing in memory across a restart: it comes back empty
    }
    const again = await eventually(async () => {
      const r = await admin('POST', '/v1/tenants', { id: `mgo-back-${process.pid}` });
      return r.status === 201 ? r : null;
    }, 'the gateway to write to MongoDB again');
    expect(again.body).toMatchObject({ id: `mgo-back-${process.pid}` });
    // a whole run again: keys, agents, admission and the projector's row (the projector kept following the journal)
    const back = await newTenant(mesh, 'mgo-after');
    expect((await back.owner('GET', `/v1/tenants/${back.id}/runs`)).body).toEqual({ runs: [], nextCursor: null });
    expect((await back.owner('PUT', `/v1/tenants/${back.id}/tools/echo`, ECHO)).status).toBe(201);
    expect((await back.owner('PUT', `/v1/tenants/${back.id}/agents/hello`, HELLO)).status).toBe(201);
    const started = await back.owner('POST', `/v1/tenants/${back.id}/runs`, { agent: 'hello', input: { name: 'Bo' } });
    expect(started.status).toBe(201);
    await waitForRun(back.owner, back.id, started.body.id);
    await eventually(async () => {
      const r = await back.owner('GET', `/v1/tenants/${back.id}/runs?status=completed`);
      return r.body?.runs?.[0]?.id === started.body.id;
    }, 'the run index to list the run started after the outage');
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { client, followEvents, newTenant, startTestMesh, waitForRun, type Api, type Mesh, type SseEvent } from './support/harness.js';

const ECHO = { version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'builtin', name: 'echo' } };
const TRANSFORM = { version: '1', riskTier: 'read', inputSchema: { type: 'object', required: ['text', 'op'] }, transport: { kind: 'builtin', name: 'transform' } };
const HELLO = {
  version: '1', planner: 'graph', tools: ['echo', 'transform'],
  steps: [
    { id: 'greet', tool: 'echo', args: { text: 'Hello, {{input.name}}!' } },
    { id: 'shout', tool: 'transform', args: { text: '{{steps.greet.result.text}}', op: 'upper' } },
  ],
};

describe('the run lifecycle over REST', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let api: Api;
  let key: string;
  let t: string;
  let other: { id: string; owner: Api };

  beforeAll(async () => {
    mesh = await startTestMesh();
    const tenant = await newTenant(mesh, 'acme');
    api = tenant.owner; key = tenant.ownerKey; t = tenant.id;
    other = await newTenant(mesh, 'globex');
    expect((await api('PUT', `/v1/tenants/${t}/tools/echo`, ECHO)).status).toBe(201);
    expect((await api('PUT', `/v1/tenants/${t}/tools/transform`, TRANSFORM)).status).toBe(201);
    expect((await api('PUT', `/v1/tenants/${t}/agents/hello`, HELLO)).status).toBe(201);
    // a slow agent for cancel: many steps
    const many = Array.from({ length: 40 }, (_, i) => ({ id: `s${i}`, tool: 'echo', args: { i } }));
    expect((await api('PUT', `/v1/tenants/${t}/agents/long`, { version: '1', planner: 'graph', tools: ['echo'], steps: many, limits: { maxSteps: 100 } })).status).toBe(201);
  });
  afterAll(async () => { await mesh?.cleanup(); });

  it('starts a run, runs its graph through the tool-runner, and reports the output', async () => {
    const res = await api('POST', `/v1/tenants/${t}/runs`, { agent: 'hello', input: { name: 'Ada' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ agent: 'hello', status: 'queued', steps: 0 });
    expect(res.headers.get('location')).toBe(`/v1/tenants/${t}/runs/${res.body.id}`);
    const run = await waitForRun(api, t, res.body.id);
    expect(run).toMatchObject({ status: 'completed', steps: 2, output: { text: 'HELLO, ADA!' }, error: null });
  });

  it('returns the same run for the same Idempotency-Key and body, and 409 for another body', async () => {
    const body = { agent: 'hello', input: { name: 'Bob' } };
    const a = await api('POST', `/v1/tenants/${t}/runs`, body, { 'idempotency-key': 'k-1' });
    const b = await api('POST', `/v1/tenants/${t}/runs`, body, { 'idempotency-key': 'k-1' });
    expect(a.status).toBe(201);
    expect(b.status).toBe(200);
    expect(b.body.id).toBe(a.body.id);
    const c = await api('POST', `/v1/tenants/${t}/runs`, { ...body, input: { name: 'Eve' } }, { 'idempotency-key': 'k-1' });
    expect(c.status).toBe(409);
    expect(c.headers.get('content-type')).toContain('application/problem+json');
    expect(c.body).toMatchObject({ status: 409, code: 'conflict', reason: 'idempotency_key_reused' });
    await waitForRun(api, t, a.body.id);
    const list = await api('GET', `/v1/tenants/${t}/runs?agent=hello&limit=100`);
    expect(list.body.runs.filter((r: { id: string }) => r.id === a.body.id)).toHaveLength(1);
  });

  it('lists runs newest first with cursor pagination and filters', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await api('POST', `/v1/tenants/${t}/runs`, { agent: 'hello', input: { name: `n${i}` } })).body.id);
    for (const id of ids) await waitForRun(api, t, id);
    const p1 = await api('GET', `/v1/tenants/${t}/runs?limit=2&status=completed`);
    expect(p1.status).toBe(200);
    expect(p1.body.runs).toHaveLength(2);
    expect(p1.body.runs[0].id > p1.body.runs[1].id).toBe(true);
    expect(p1.body.runs[0].id).toBe(ids[2]);
    const p2 = await api('GET', `/v1/tenants/${t}/runs?limit=2&status=completed&cursor=${p1.body.nextCursor}`);
    expect(p2.body.runs[0].id < p1.body.runs[1].id).toBe(true);
    expect((await api('GET', `/v1/tenants/${t}/runs?status=failed`)).body.runs).toEqual([]);
  });

  it('streams the journal as SSE and resumes from Last-Event-ID without loss or duplicates', async () => {
    const run = (await api('POST', `/v1/tenants/${t}/runs`, { agent: 'hello', input: { name: 'Sse' } })).body;
    const all: SseEvent[] = [];
    await followEvents(mesh.gatewayUrl, key, `/v1/tenants/${t}/runs/${run.id}/events`, (e) => all.push(e));
    expect(all.map((e) => e.event)).toEqual([
      'run.created', 'run.started', 'step.started', 'tool.called', 'tool.completed',
      'step.started', 'tool.called', 'tool.completed', 'run.completed',
    ]);
    for (const e of all) expect(e.data).toMatchObject({ seq: Number(e.id), runId: run.id, tenantId: t, type: e.event });
    const resumed: SseEvent[] = [];
    await followEvents(mesh.gatewayUrl, key, `/v1/tenants/${t}/runs/${run.id}/events`, (e) => resumed.push(e), { lastEventId: all[3].id });
    expect(resumed.map((e) => e.id)).toEqual(all.slice(4).map((e) => e.id));
    const viaQuery: SseEvent[] = [];
    await followEvents(mesh.gatewayUrl, key, `/v1/tenants/${t}/runs/${run.id}/events?after=${all[7].id}`, (e) => viaQuery.push(e));
    expect(viaQuery.map((e) => e.event)).toEqual(['run.completed']);
    const after: SseEvent[] = [];
    await followEvents(mesh.gatewayUrl, key, `/v1/tenants/${t}/runs/${run.id}/events?after=${all[8].id}`, (e) => after.push(e));
    expect(after).toEqual([]); // the run has ended: the stream closes at once
  });

  it('cancels a run after the step in flight', async () => {
    const run = (await api('POST', `/v1/tenants/${t}/runs`, { agent: 'long', input: {} })).body;
    const res = await api('POST', `/v1/tenants/${t}/runs/${run.id}/cancel`, { reason: 'operator said so' });
    expect(res.status).toBe(202);
    const done = await waitForRun(api, t, run.id);
    expect(done.status).toBe('cancelled');
    expect(done.steps).toBeLessThan(40);
    const again = await api('POST', `/v1/tenants/${t}/runs/${run.id}/cancel`, {});
    expect(again.status).toBe(409);
  });

  it('fails a run whose agent names an unregistered tool with invalid_input', async () => {
    expect((await api('PUT', `/v1/tenants/${t}/agents/broken`, { version: '1', planner: 'graph', tools: ['nope'], steps: [{ id: 'a', tool: 'nope', args: {} }] })).status).toBe(201);
    const run = (await api('POST', `/v1/tenants/${t}/runs`, { agent: 'broken', input: {} })).body;
    const done = await waitForRun(api, t, run.id);
    expect(done).toMatchObject({ status: 'failed', error: { code: 'invalid_input' } });
  });

  describe('bad input gets an RFC 9457 problem and changes nothing', () => {
    const raw = (path: string, init: RequestInit) => fetch(`${mesh.gatewayUrl}${path}`, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers ?? {}) } });
    const problem = async (res: Response, status: number, code: string) => {
      expect(res.status).toBe(status);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      const body = (await res.json()) as { errors?: unknown };
      expect(body).toMatchObject({ status, code, title: expect.any(String), detail: expect.any(String), type: expect.stringContaining('https://') });
      return body;
    };
    const countRuns = async () => (await api('GET', `/v1/tenants/${t}/runs?limit=100`)).body.runs.length;

    it('malformed JSON is 400', async () => {
      const before = await countRuns();
      await problem(await raw(`/v1/tenants/${t}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"agent": "hello",' }), 400, 'invalid_argument');
      expect(await countRuns()).toBe(before);
    });
    it('a missing field is 400 and names the field', async () => {
      const b = await problem(await raw(`/v1/tenants/${t}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"input": {}}' }), 400, 'invalid_argument');
      expect(b.errors).toEqual(expect.arrayContaining([{ field: '/agent', message: 'is required' }]));
    });
    it('an unknown field is 400', async () => {
      const b = await problem(await raw(`/v1/tenants/${t}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"agent":"hello","tenantId":"globex"}' }), 400, 'invalid_argument');
      expect(b.errors).toEqual(expect.arrayContaining([{ field: '/tenantId', message: 'is not allowed' }]));
    });
    it('an unknown agent is 400 naming the agent field', async () => {
      const b = await problem(await raw(`/v1/tenants/${t}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"agent":"nobody"}' }), 400, 'invalid_argument');
      expect(b.errors).toEqual([{ field: '/agent', message: 'no such agent' }]);
    });
    it('an oversized body is 413', async () => {
      const big = JSON.stringify({ agent: 'hello', input: { blob: 'x'.repeat(1_100_000) } });
      await problem(await raw(`/v1/tenants/${t}/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big }), 413, 'payload_too_large');
    });
    it('a body that is not JSON is 415', async () => {
      await problem(await raw(`/v1/tenants/${t}/runs`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'agent=hello' }), 415, 'unsupported_media_type');
    });
    it('an unknown run id is 404, a malformed one too', async () => {
      await problem(await raw(`/v1/tenants/${t}/runs/run_01J00000000000000000000000`, {}), 404, 'not_found');
      await problem(await raw(`/v1/tenants/${t}/runs/..%2F..%2Fadmin`, {}), 404, 'not_found');
      await problem(await raw(`/v1/tenants/${t}/runs/run_01J00000000000000000000000/events`, {}), 404, 'not_found');
    });
    it('a bad Last-Event-ID is 400', async () => {
      const run = (await api('POST', `/v1/tenants/${t}/runs`, { agent: 'hello', input: { name: 'x' } })).body;
      await problem(await raw(`/v1/tenants/${t}/runs/${run.id}/events`, { headers: { 'last-event-id': 'abc' } }), 400, 'invalid_argument');
    });
    it('no key is 401, a bad key is 401', async () => {
      const res = await fetch(`${mesh.gatewayUrl}/v1/tenants/${t}/runs`);
      await problem(res, 401, 'unauthenticated');
      await problem(await fetch(`${mesh.gatewayUrl}/v1/tenants/${t}/runs`, { headers: { authorization: 'Bearer amk_nope' } }), 401, 'unauthenticated');
    });
    it("another tenant's run id is 403 or 404 and never the data", async () => {
      const run = (await api('POST', `/v1/tenants/${t}/runs`, { agent: 'hello', input: { name: 'secret-input' } })).body;
      const viaPath = await other.owner('GET', `/v1/tenants/${t}/runs/${run.id}`);
      expect([403, 404]).toContain(viaPath.status);
      expect(JSON.stringify(viaPath.body)).not.toContain('secret-input');
      const viaOwnTenant = await other.owner('GET', `/v1/tenants/${other.id}/runs/${run.id}`);
      expect(viaOwnTenant.status).toBe(404);
      const events = await other.owner('GET', `/v1/tenants/${other.id}/runs/${run.id}/events`);
      expect(events.status).toBe(404);
      const cancel = await other.owner('POST', `/v1/tenants/${other.id}/runs/${run.id}/cancel`, {});
      expect(cancel.status).toBe(404);
      expect((await waitForRun(api, t, run.id)).status).toBe('completed');
    });
    it('a revoked key is refused at once', async () => {
      const admin = client(mesh.gatewayUrl, mesh.adminKey);
      const k = await admin('POST', `/v1/tenants/${t}/api-keys`, { roles: ['viewer'] });
      const viewer = client(mesh.gatewayUrl, k.body.key);
      expect((await viewer('GET', `/v1/tenants/${t}/runs`)).status).toBe(200);
      expect((await viewer('POST', `/v1/tenants/${t}/runs`, { agent: 'hello' })).status).toBe(403);
      expect((await admin('DELETE', `/v1/tenants/${t}/api-keys/${k.body.id}`)).status).toBe(204);
      expect((await viewer('GET', `/v1/tenants/${t}/runs`)).status).toBe(401);
    });
    it('a new body under an existing tool or agent version is 409; the same body again is 200', async () => {
      expect((await api('PUT', `/v1/tenants/${t}/tools/echo`, ECHO)).status).toBe(200);
      const b = await api('PUT', `/v1/tenants/${t}/tools/echo`, { ...ECHO, description: 'changed' });
      expect(b.status).toBe(409);
      expect((await api('PUT', `/v1/tenants/${t}/agents/hello`, HELLO)).status).toBe(200);
      expect((await api('PUT', `/v1/tenants/${t}/agents/hello`, { ...HELLO, instructions: 'x' })).status).toBe(409);
    });
    it('an invalid tool definition is 400 naming the field', async () => {
      const b = await api('PUT', `/v1/tenants/${t}/tools/bad`, { version: '1', riskTier: 'dangerous', inputSchema: {}, transport: { kind: 'builtin', name: 'echo' } });
      expect(b.status).toBe(400);
      expect(JSON.stringify(b.body.errors)).toContain('/riskTier');
    });
  });
});

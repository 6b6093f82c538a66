import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startTestMesh, type Mesh } from './support/harness.js';

interface Completion {
  id: string;
  object: string;
  model: string;
  choices: Array<{ message: { role: string; content: string | null }; finish_reason: string }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
}

interface Chunk {
  object: string;
  choices: Array<{ delta: { role?: string; content?: string }; finish_reason: string | null }>;
  usage?: Completion['usage'];
}

interface ReplicaView {
  id: string;
  url: string;
  kind: string;
  models: string[];
  capacity: number | null;
  weight: number;
  health: string;
  load: number;
  up: boolean;
  source: string;
}

const SYSTEM = 'You are an agent that reads tool results carefully and plans each step. '.repeat(15);

describe('the inference-router in the running mesh (simulated replicas)', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let url: string;
  let token: string;

  beforeAll(async () => {
    mesh = await startTestMesh({ AGENTMESH_SIM_REPLICAS: '2', AGENTMESH_SIM_TIME_SCALE: '0.02', AGENTMESH_ROUTER_ADMISSION_WAIT: '300ms' });
    url = `http://127.0.0.1:${mesh.ports['inference-router']}`;
    token = readFileSync(join(mesh.dataDir, 'inference.token'), 'utf8').trim();
  });
  afterAll(async () => {
    await mesh?.cleanup();
  });

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-agentmesh-tenant': 'acme', ...headers },
      body: JSON.stringify(body),
    });
  const admin = (method: string, path: string, body?: unknown) =>
    fetch(`${url}/admin/replicas${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

  it('says plainly in its log that it routes to simulators', () => {
    expect(readFileSync(mesh.logFile('inference-router')!, 'utf8')).toContain('in-process replica SIMULATORS');
  });

  it('wants the service token and a tenant', async () => {
    const noToken = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(noToken.status).toBe(401);
    expect(((await noToken.json()) as { error: { code: string } }).error.code).toBe('invalid_token');
    const noTenant = await post({ model: 'sim-70b', messages: [{ role: 'user', content: 'hi' }] }, { 'x-agentmesh-tenant': '' });
    expect(noTenant.status).toBe(400);
    const badBody = await post({ model: 'sim-70b', messages: [] });
    expect(badBody.status).toBe(400);
    expect(((await badBody.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const models = (await (await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${token}` } })).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(['auto', 'sim-70b', 'sim-8b']);
  });

  it('answers POST /v1/chat/completions with an OpenAI completion', async () => {
    const res = await post({ model: 'sim-70b', messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 6 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-agentmesh-replica')).toMatch(/^sim-[01]$/);
    expect(res.headers.get('server-timing')).toMatch(/^router;dur=/);
    const body = (await res.json()) as Completion;
    expect(body).toMatchObject({ object: 'chat.completion', choices: [{ message: { role: 'assistant' }, finish_reason: 'length' }] });
    expect(body.choices[0].message.content!.split(' ')).toHaveLength(6);
    expect(body.usage.completion_tokens).toBe(6);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + 6);
  });

  it('streams chat.completion.chunk events, with usage when asked, ending with [DONE]', async () => {
    const res = await post({ model: 'auto', messages: [{ role: 'user', content: 'Stream please.' }], max_tokens: 10, stream: true, stream_options: { include_usage: true } }, { 'x-agentmesh-model-hint': 'easy' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('x-agentmesh-model')).toBe('sim-8b');
    const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Chunk);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
    expect(text.split(' ')).toHaveLength(10);
    expect(chunks.flatMap((c) => c.choices).find((ch) => ch.finish_reason)?.finish_reason).toBe('length');
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ completion_tokens: 10 });
  });

  it('keeps the turns of one session on one replica, whose prefix cache serves the earlier turns', async () => {
    const messages: Array<{ role: string; content: string | null }> = [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Begin the task.' }];
    const seen: Array<{ replica: string | null; placement: string | null; cached: number }> = [];
    for (let turn = 0; turn < 4; turn++) {
      const res = await post({ model: 'sim-70b', messages, max_tokens: 8 }, { 'x-agentmesh-session': 'sticky-session-1' });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Completion;
      seen.push({ replica: res.headers.get('x-agentmesh-replica'), placement: res.headers.get('x-agentmesh-placement'), cached: body.usage.prompt_tokens_details?.cached_tokens ?? 0 });
      messages.push({ role: 'assistant', content: body.choices[0].message.content }, { role: 'user', content: `Result of step ${turn}: ${'value '.repeat(30)}` });
    }
    expect(new Set(seen.map((s) => s.replica)).size).toBe(1);
    expect(seen.map((s) => s.placement)).toEqual(['new', 'hit', 'hit', 'hit']);
    expect(seen[0].cached).toBe(0);
    for (const s of seen.slice(1)) expect(s.cached).toBeGreaterThan(200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`agentmesh_router_affinity_hits_total\\{[^}]*replica="${seen[0].replica}"[^}]*\\} 3`));
    expect(metrics).toMatch(/agentmesh_replica_up\{[^}]*replica="sim-0"[^}]*\} 1/);
    expect(metrics).toMatch(/agentmesh_llm_tokens_total\{[^}]*tenant="acme"[^}]*direction="input"/);
  });

  it('answers 429 with Retry-After to new sessions when every replica is full, while pinned sessions keep working', async () => {
    const { replicas } = (await (await admin('GET', '')).json()) as { replicas: ReplicaView[] };
    expect(replicas.map((r) => r.id)).toEqual(['sim-0', 'sim-1']);
    const spec = (r: ReplicaView, capacity: number) => ({ url: r.url, kind: r.kind, models: r.models, capacity, weight: r.weight, health: r.health });
    // room for exactly one more session on each replica
    for (const r of replicas) expect((await admin('PUT', `/${r.id}`, spec(r, r.load + 1))).status).toBe(200);
    try {
      const fill = async (session: string) => {
        const res = await post({ model: 'sim-70b', messages: [{ role: 'user', content: 'fill' }], max_tokens: 2 }, { 'x-agentmesh-session': session });
        await res.arrayBuffer();
        return res.status;
      };
      expect(await fill('fill-1')).toBe(200);
      expect(await fill('fill-2')).toBe(200);
      const t = Date.now();
      const refused = await post({ model: 'sim-70b', messages: [{ role: 'user', content: 'one too many' }], max_tokens: 2 }, { 'x-agentmesh-session': 'fill-3' });
      expect(refused.status).toBe(429);
      expect(Date.now() - t).toBeGreaterThanOrEqual(250); // it waited for room first
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(((await refused.json()) as { error: { type: string; code: string } }).error).toMatchObject({ type: 'rate_limit_error', code: 'replicas_full' });
      // a session that already has its replica is not refused
      expect(await fill('sticky-session-1')).toBe(200);
      expect(await fill('fill-1')).toBe(200);
    } finally {
      for (const r of replicas) await admin('PUT', `/${r.id}`, spec(r, r.capacity ?? 64));
    }
    expect(await (async () => (await post({ model: 'sim-70b', messages: [{ role: 'user', content: 'room again' }], max_tokens: 2 }, { 'x-agentmesh-session': 'fill-3' })).status)()).toBe(200);
  });
});

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { status as Status } from '@grpc/grpc-js';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS } from '#libs/contracts';
import { connectNats } from '#libs/messaging';
import { AgentmeshClient, AgentmeshGrpcError } from '#libs/sdk';
import { eventually, newTenant, startTestMesh, type Api, type Mesh } from './support/harness.js';
import { Gate } from './support/gate.js';

/**
 * Per-tenant limits end to end, on a mesh with small limits: 20 requests/s with a burst of 20 per
 * tenant, and 3 concurrent runs per tenant. Rate limiting (REST 429 + Retry-After, gRPC
 * RESOURCE_EXHAUSTED with retry info), the concurrent-run cap (429 `concurrent_runs`, freed by the
 * runs' terminal events) and noisy-neighbour isolation: a flooding tenant does not slow another
 * tenant's runs down.
 */

const RATE = 20;
const BURST = 20;
const CAP = 3;
const ECHO = { version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'builtin', name: 'echo' } };
const HELLO = {
  version: '1', planner: 'graph', tools: ['echo'],
  steps: [{ id: 'a', tool: 'echo', args: { text: '{{input.name}}' } }, { id: 'b', tool: 'echo', args: { text: '{{steps.a.result.text}}!' } }],
};
/**
 * The noisy tenant's client: 8 concurrent loops of run starts, each pausing PAUSE_MS between
 * requests (about 10x the tenant's rate limit in all), stopped by a line on stdin; prints the
 * status counts. Paced rather than unbounded: on a 2-core machine an unbounded client measures
 * how much CPU the flood takes from everything else, not whether the limits isolate tenants.
 */
const FLOOD = `
const counts = {};
let stop = false;
process.stdin.on('data', () => { stop = true; });
const body = JSON.stringify({ agent: 'hello', input: { name: 'n' } });
const worker = async () => {
  for (let i = 0; i < 400 && !stop; i++) {
    const r = await fetch(process.env.URL, { method: 'POST', headers: { authorization: 'Bearer ' + process.env.KEY, 'content-type': 'application/json' }, body });
    await r.arrayBuffer();
    counts[r.status] = (counts[r.status] ?? 0) + 1;
    await new Promise((res) => setTimeout(res, Number(process.env.PAUSE_MS)));
  }
};
process.stdout.write('started\\n');
await Promise.all(Array.from({ length: 8 }, worker));
process.stdout.write(JSON.stringify(counts) + '\\n');
process.exit(0);
`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

describe('per-tenant limits', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let nc: NatsConnection;
  let gate: Gate;
  const clients: AgentmeshClient[] = [];

  beforeAll(async () => {
    mesh = await startTestMesh({
      AGENTMESH_TENANT_RATE: String(RATE), AGENTMESH_TENANT_BURST: String(BURST), AGENTMESH_TENANT_MAX_CONCURRENT_RUNS: String(CAP),
    });
    nc = await connectNats(mesh.natsUrl, 'limits-e2e');
    gate = await Gate.open();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await gate?.close();
    await nc?.close();
    await mesh?.cleanup();
  });

  /** A tenant with the echo tool and the hello agent; waits until its bucket is full again. */
  async function tenant(prefix: string) {
    const t = await newTenant(mesh, prefix);
    expect((await t.owner('PUT', `/v1/tenants/${t.id}/tools/echo`, ECHO)).status).toBe(201);
    expect((await t.owner('PUT', `/v1/tenants/${t.id}/agents/hello`, HELLO)).status).toBe(201);
    return t;
  }

  it('answers 429 with Retry-After once a tenant has used its burst, and only that tenant', async () => {
    const c = await tenant('flood-rest');
    const d = await tenant('calm-rest');
    await sleep(1000);
    const t0 = performance.now();
    const res = await Promise.all(Array.from({ length: 2 * BURST }, () => c.owner('GET', `/v1/tenants/${c.id}/tools`)));
    const refilled = Math.ceil((RATE * (performance.now() - t0)) / 1000); // tokens that came back while the burst was in flight
    const ok = res.filter((r) => r.status === 200).length;
    const limited = res.filter((r) => r.status === 429);
    expect(ok).toBeGreaterThanOrEqual(BURST - 1);
    expect(ok).toBeLessThanOrEqual(BURST + refilled + 1);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited.length).toBe(res.length - ok);
    for (const r of limited) {
      expect(r.headers.get('content-type')).toContain('application/problem+json');
      expect(r.body).toMatchObject({ status: 429, code: 'rate_limited', reason: 'rate_limited' });
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    // the other tenant is untouched
    expect((await d.owner('GET', `/v1/tenants/${d.id}/tools`)).status).toBe(200);
    await sleep(Number(limited[0].headers.get('retry-after')) * 1000);
    expect((await c.owner('GET', `/v1/tenants/${c.id}/tools`)).status).toBe(200);
  });

  it('answers RESOURCE_EXHAUSTED with retry info over gRPC', async () => {
    const c = await tenant('flood-grpc');
    await sleep(1000);
    const client = new AgentmeshClient({ address: `127.0.0.1:${mesh.grpcPort}`, apiKey: c.ownerKey });
    clients.push(client);
    const outcomes = await Promise.all(Array.from({ length: 2 * BURST }, () => client.listTools({ tenant: c.id }).then(() => null, (e: unknown) => e)));
    const errors = outcomes.filter((e): e is AgentmeshGrpcError => e instanceof AgentmeshGrpcError);
    expect(errors.length).toBeGreaterThanOrEqual(BURST - 2);
    for (const e of errors) {
      expect(e.grpcCode).toBe(Status.RESOURCE_EXHAUSTED);
      expect(e.code).toBe('rate_limited');
      expect(e.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(e.metadata?.get('retry-after')[0]).toBe(String(e.retryAfterSeconds));
    }
  });

  it(`caps a tenant at ${CAP} runs in progress (429 concurrent_runs), and frees slots as runs end`, async () => {
    const e = await tenant('capped');
    const gated = { version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'http', url: `http://127.0.0.1:${gate.port}/g` }, egress: [`127.0.0.1:${gate.port}`], timeoutMs: 60_000 };
    expect((await e.owner('PUT', `/v1/tenants/${e.id}/tools/gate`, gated)).status).toBe(201);
    expect((await e.owner('PUT', `/v1/tenants/${e.id}/agents/gated`, { version: '1', planner: 'graph', tools: ['gate'], steps: [{ id: 'w', tool: 'gate', args: {} }] })).status).toBe(201);
    const other = await tenant('uncapped');
    await sleep(1000);
    for (let i = 0; i < CAP; i++) expect((await e.owner('POST', `/v1/tenants/${e.id}/runs`, { agent: 'gated', input: {} })).status).toBe(201);
    const refused = await e.owner('POST', `/v1/tenants/${e.id}/runs`, { agent: 'hello', input: { name: 'x' } });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ code: 'resource_exhausted', reason: 'concurrent_runs' });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const client = new AgentmeshClient({ address: `127.0.0.1:${mesh.grpcPort}`, apiKey: e.ownerKey });
    clients.push(client);
    const g = await client.startRun({ tenant: e.id, agent: 'hello' }).then(() => null, (x: unknown) => x);
    expect(g).toBeInstanceOf(AgentmeshGrpcError);
    expect((g as AgentmeshGrpcError).grpcCode).toBe(Status.RESOURCE_EXHAUSTED);
    expect((g as AgentmeshGrpcError).detail?.reason).toBe('concurrent_runs');
    // another tenant is not affected
    expect((await other.owner('POST', `/v1/tenants/${other.id}/runs`, { agent: 'hello', input: { name: 'y' } })).status).toBe(201);
    // the runs end: their terminal events empty the tenant's active set, with no admission asking
    await eventually(async () => gate.waiting >= CAP, 'the gated runs to reach the gate');
    gate.release();
    const kv = await new Kvm(nc).open(BUCKETS.activeRuns);
    await eventually(async () => {
      const entry = await kv.get(`${e.id}.active`);
      return entry ? Object.keys((entry.json() as { runs: object }).runs).length === 0 : false;
    }, 'the active-run set to empty from the terminal events', 10_000);
    expect((await e.owner('POST', `/v1/tenants/${e.id}/runs`, { agent: 'hello', input: { name: 'again' } })).status).toBe(201);
  });

  it('keeps a quiet tenant\'s run latency in its normal range while another tenant floods the gateway', async () => {
    const noisy = await tenant('noisy');
    const quiet = await tenant('quiet');
    const ended = new Map<string, number>();
    const sub = nc.subscribe(`run.${quiet.id}.>`, {
      callback: (_err, m) => {
        const type = m.headers?.get('am-type') ?? '';
        if (type === 'run.completed' || type === 'run.failed' || type === 'run.cancelled') ended.set(m.subject.split('.')[2], performance.now());
      },
    });
    await nc.flush();
    await sleep(1000);

    /** Runs `n` runs of the quiet tenant one after the other (about 6 requests/s, within its limit); latency = start request → terminal event. */
    const measure = async (api: Api, n: number): Promise<{ latencies: number[]; statuses: number[] }> => {
      const latencies: number[] = [];
      const statuses: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const r = await api('POST', `/v1/tenants/${quiet.id}/runs`, { agent: 'hello', input: { name: `q${i}` } });
        statuses.push(r.status);
        if (r.status === 201) {
          await eventually(async () => ended.has(r.body.id), `quiet run ${r.body.id} to end`, 20_000);
          latencies.push(ended.get(r.body.id)! - t0);
        }
        await sleep(150);
      }
      return { latencies, statuses };
    };

    const N = 21;
    const baseline = await measure(quiet.owner, N);

    // the flood, from its own process (as another client would be): 8 workers hammer the gateway
    // with run starts for the noisy tenant, at most 400 requests each, until told to stop
    const flooder = spawn(process.execPath, ['--input-type=module', '-e', FLOOD], {
      env: { ...process.env, URL: `${mesh.gatewayUrl}/v1/tenants/${noisy.id}/runs`, KEY: noisy.ownerKey, PAUSE_MS: String(Math.round(8000 / (10 * RATE))) }, stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    flooder.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    const flooded = new Promise<void>((resolve) => flooder.once('exit', () => resolve()));
    await eventually(async () => out.includes('started'), 'the flood to start');
    await sleep(300);
    const during = await measure(quiet.owner, N);
    flooder.stdin.end('stop\n');
    await flooded;
    const flood = JSON.parse(out.trim().split('\n').pop()!) as Record<number, number>;
    // the normal range, measured on both sides of the flood (other work on the machine moves it)
    const after = await measure(quiet.owner, N);
    sub.unsubscribe();

    const base = Math.max(median(baseline.latencies), median(after.latencies));
    const busy = median(during.latencies);
    const sent = Object.values(flood).reduce((a, b) => a + b, 0);
    // eslint-disable-next-line no-console
    console.log(`quiet tenant's median run latency: ${base.toFixed(1)} ms alone, ${busy.toFixed(1)} ms while the noisy tenant sent ${sent} requests (${JSON.stringify(flood)} by status)`);

    expect([...baseline.statuses, ...after.statuses].every((s) => s === 201)).toBe(true);
    expect(during.statuses.every((s) => s === 201)).toBe(true); // never limited by the other tenant's flood
    expect(flood[429] ?? 0).toBeGreaterThan(sent / 2); // the flood was mostly refused
    expect(busy).toBeLessThanOrEqual(3 * base);
  });
});

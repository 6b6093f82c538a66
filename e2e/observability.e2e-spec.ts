import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, ROOT, SERVICES } from '../scripts/mesh.mjs';
import { eventually, newTenant, startTestMesh, waitForRun, type Api, type Mesh } from './support/harness.js';

/*
 * Observability end to end, against a real Prometheus (Debian's `prometheus` package; CI installs
 * it): one run's W3C trace crosses REST and NATS and stamps the logs of every service it touches;
 * Prometheus scrapes the six services and sees the run, step, tool-call and consumer-lag metrics;
 * and the shipped alert rules (deploy/prometheus/alerts.yml) fire when a service dies.
 */

const PROMETHEUS = process.env.PROMETHEUS_BIN ?? 'prometheus';
const ALERT_RULES = join(ROOT, 'deploy/prometheus/alerts.yml');
/**
 * The production `for:` durations (2 to 15 minutes) would make this test wait minutes. The test
 * loads a copy of the real rule file in which only the `for:` lines are rewritten to this value:
 * every expression, label and annotation is the shipped one.
 */
const SHORT_FOR = '3s';

const ECHO = { version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'builtin', name: 'echo' } };
const TRANSFORM = { version: '1', riskTier: 'read', inputSchema: { type: 'object', required: ['text', 'op'] }, transport: { kind: 'builtin', name: 'transform' } };
const HELLO = {
  version: '1', planner: 'graph', tools: ['echo', 'transform'],
  steps: [
    { id: 'greet', tool: 'echo', args: { text: 'Hello, {{input.name}}!' } },
    { id: 'shout', tool: 'transform', args: { text: '{{steps.greet.result.text}}', op: 'upper' } },
  ],
};

interface PromSample { metric: Record<string, string>; value: [number, string] }
interface PromAlert { labels: Record<string, string>; annotations: Record<string, string>; state: 'pending' | 'firing'; value: string }
interface PromTarget { labels: Record<string, string>; health: 'up' | 'down' | 'unknown'; lastError: string }
type LogLine = Record<string, unknown>;

/** The rule file as shipped, with only its `for:` durations shortened. */
function shortenedRules(source: string): { text: string; rewritten: number } {
  let rewritten = 0;
  const text = source.replace(/^(\s+)for:\s*\S+\s*$/gm, (_line, indent: string) => { rewritten++; return `${indent}for: ${SHORT_FOR}`; });
  return { text, rewritten };
}

function readLog(file: string | undefined): LogLine[] {
  if (!file) return [];
  const out: LogLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try { out.push(JSON.parse(line) as LogLine); } catch { /* a line still being written */ }
  }
  return out;
}

describe('observability: traces in logs, metrics and alerts on a real Prometheus', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let prom: ChildProcess | undefined;
  let promExited: Promise<unknown> | undefined;
  let promUrl = '';
  let promDir = '';
  let api: Api;
  let t: string;
  let runId = '';
  const sessionId = `sess-${randomBytes(4).toString('hex')}`;

  const promGet = async <T>(path: string, params: Record<string, string> = {}): Promise<T> => {
    const res = await fetch(`${promUrl}${path}?${new URLSearchParams(params)}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  };
  const query = async (q: string): Promise<PromSample[]> => (await promGet<{ result: PromSample[] }>('/api/v1/query', { query: q })).result;
  /** Waits until the instant query returns a series whose value passes `ok`; returns it. */
  const scraped = (q: string, ok: (v: number) => boolean = (v) => v > 0, timeoutMs = 20_000) =>
    eventually(async () => (await query(q)).find((s) => ok(Number(s.value[1]))), `prometheus to return ${q}`, timeoutMs);

  beforeAll(async () => {
    const probe = spawnSync(PROMETHEUS, ['--version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      throw new Error(`${PROMETHEUS} is not installed: install Debian's prometheus package (apt-get install prometheus); CI installs it, so this test never skips`);
    }
    mesh = await startTestMesh();

    promDir = mkdtempSync(join(tmpdir(), 'agentmesh-prom-'));
    const rules = shortenedRules(readFileSync(ALERT_RULES, 'utf8'));
    expect(rules.rewritten).toBeGreaterThan(0);
    writeFileSync(join(promDir, 'alerts.yml'), rules.text);
    // The production config discovers pods in Kubernetes; here the same job name and the same
    // target labels (app, namespace, pod) come from static targets, one per service.
    writeFileSync(join(promDir, 'prometheus.yml'), stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      rule_files: [join(promDir, 'alerts.yml')],
      scrape_configs: [{
        job_name: 'agentmesh',
        metrics_path: '/metrics',
        static_configs: SERVICES.map((svc) => ({
          targets: [`127.0.0.1:${mesh.ports[svc]}`],
          labels: { app: svc, namespace: 'agentmesh-e2e', pod: `${svc}-0` },
        })),
      }],
    }));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    const log = createWriteStream(join(promDir, 'prometheus.log'));
    prom = spawn(PROMETHEUS, [
      `--config.file=${join(promDir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(promDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    prom.stdout?.pipe(log); prom.stderr?.pipe(log);
    promExited = new Promise((r) => prom!.once('exit', r));
    await eventually(async () => {
      if (prom!.exitCode !== null) throw new Error(`prometheus exited: ${readFileSync(join(promDir, 'prometheus.log'), 'utf8').slice(-2000)}`);
      return (await fetch(`${promUrl}/-/ready`)).status === 200;
    }, 'prometheus to be ready', 30_000);

    const tenant = await newTenant(mesh, 'obs');
    api = tenant.owner; t = tenant.id;
    expect((await api('PUT', `/v1/tenants/${t}/tools/echo`, ECHO)).status).toBe(201);
    expect((await api('PUT', `/v1/tenants/${t}/tools/transform`, TRANSFORM)).status).toBe(201);
    expect((await api('PUT', `/v1/tenants/${t}/agents/hello`, HELLO)).status).toBe(201);
  }, 90_000);

  afterAll(async () => {
    if (prom && prom.exitCode === null && prom.signalCode === null) {
      prom.kill('SIGTERM');
      await promExited;
    }
    await mesh?.cleanup();
    if (promDir) rmSync(promDir, { recursive: true, force: true });
  }, 60_000);

  it('echoes a traceparent on every response: the caller\'s trace continued, or a new one', async () => {
    const incoming = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
    const continued = await api('GET', `/v1/tenants/${t}/runs?limit=1`, undefined, { traceparent: incoming });
    const echoed = continued.headers.get('traceparent') ?? '';
    expect(echoed.split('-')[1]).toBe(incoming.split('-')[1]);
    expect(echoed).not.toBe(incoming);
    const fresh = (await api('GET', `/v1/tenants/${t}/runs?limit=1`, undefined, { traceparent: 'not-a-trace' })).headers.get('traceparent');
    expect(fresh).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(fresh?.split('-')[1]).not.toBe(incoming.split('-')[1]);
    // even a refused request is traced
    const refused = await fetch(`${mesh.gatewayUrl}/v1/tenants/${t}/runs`, { headers: { traceparent: incoming } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('traceparent')?.split('-')[1]).toBe(incoming.split('-')[1]);
  });

  it('carries one run\'s trace id, tenant and session into the gateway, orchestrator and tool-runner logs', async () => {
    const traceId = randomBytes(16).toString('hex');
    const res = await api('POST', `/v1/tenants/${t}/runs`, { agent: 'hello', input: { name: 'Ada' }, sessionId }, {
      traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('traceparent')?.split('-')[1]).toBe(traceId);
    runId = res.body.id;
    expect(await waitForRun(api, t, runId)).toMatchObject({ status: 'completed', steps: 2 });

    const touched = ['gateway', 'orchestrator', 'tool-runner'];
    const bySvc = await eventually(async () => {
      const m = Object.fromEntries(touched.map((svc) => [svc, readLog(mesh.logFile(svc)).filter((l) => l.traceId === traceId)]));
      const done = m.orchestrator.some((l) => l.msg === 'run finished') && m['tool-runner'].length >= 2 && m.gateway.length >= 1;
      return done ? m : null;
    }, `the trace id ${traceId} in the ${touched.join(', ')} logs`);
    for (const svc of touched) {
      expect(bySvc[svc].length).toBeGreaterThan(0);
      for (const line of bySvc[svc]) expect(line).toMatchObject({ service: svc, traceId, tenant: t, sessionId });
    }
    expect(bySvc.gateway).toContainEqual(expect.objectContaining({ msg: 'request', method: 'POST', status: 201 }));
    expect(bySvc['tool-runner'].filter((l) => l.kind === 'cmd:tool.execute' && l.outcome === 'ack')).toHaveLength(2);
    expect(bySvc.orchestrator).toContainEqual(expect.objectContaining({ msg: 'run finished', runId, status: 'completed' }));
    // no other run's lines were stamped with this trace
    for (const svc of touched) for (const line of bySvc[svc]) if (line.runId !== undefined) expect(line.runId).toBe(runId);
  });

  it('lets Prometheus scrape every service, with run, step, tool-call and consumer-lag metrics and bounded labels', async () => {
    expect(runId).not.toBe('');
    const targets = await eventually(async () => {
      const { activeTargets } = await promGet<{ activeTargets: PromTarget[] }>('/api/v1/targets', { state: 'active' });
      return activeTargets.length === SERVICES.length && activeTargets.every((x) => x.health === 'up') ? activeTargets : null;
    }, 'every service target to be up');
    expect(targets.map((x) => x.labels.app).sort()).toEqual([...SERVICES].sort());

    const tenant = `tenant="${t}"`;
    await scraped(`agentmesh_runs_started_total{${tenant}}`);
    const finished = await scraped(`agentmesh_runs_finished_total{${tenant},status="completed"}`);
    expect(finished.metric).toMatchObject({ app: 'orchestrator', service: 'orchestrator', job: 'agentmesh' });
    await scraped(`agentmesh_steps_total{${tenant}}`, (v) => v >= 2);
    await scraped(`agentmesh_step_duration_seconds_count{${tenant}}`, (v) => v >= 2);
    await scraped(`agentmesh_step_duration_seconds_bucket{${tenant},le="+Inf"}`, (v) => v >= 2);
    await scraped(`agentmesh_tool_calls_total{${tenant},tool="echo",outcome="ok"}`);
    await scraped(`agentmesh_tool_calls_total{${tenant},tool="transform",outcome="ok"}`);
    await scraped('agentmesh_messages_total{service="tool-runner",kind="cmd:tool.execute",outcome="ack"}');
    await scraped('agentmesh_http_requests_total{service="gateway",method="POST",route="/v1/tenants/:t/runs",status="201"}');
    await scraped('agentmesh_http_request_duration_seconds_count{service="gateway"}');

    // consumer lag, read from JetStream consumer info by each service that reads a durable consumer
    for (const consumer of ['orchestrator', 'tool-runner']) {
      for (const name of ['agentmesh_jetstream_consumer_pending', 'agentmesh_jetstream_consumer_ack_pending']) {
        const s = await scraped(`${name}{stream="AGENTMESH_CMD",consumer="${consumer}"}`, (v) => v >= 0);
        expect(s.metric.app).toBe(consumer);
      }
    }
    // the work queue drained: no lag left once the run is done
    await scraped('max(agentmesh_jetstream_consumer_pending{stream="AGENTMESH_CMD"})', (v) => v === 0);

    // bounded label sets: no label value anywhere names the run or the session
    const labels = await promGet<string[]>('/api/v1/labels');
    for (const label of labels) {
      const values = await promGet<string[]>(`/api/v1/label/${label}/values`);
      for (const v of values) {
        expect(v).not.toContain(runId);
        expect(v).not.toContain(sessionId);
      }
    }
  });

  it('fires the shipped AgentmeshServiceDown alert through Prometheus when the cost-governor dies', async () => {
    const alerts = async () => (await promGet<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts;
    const serviceDown = (a: PromAlert) => a.labels.alertname === 'AgentmeshServiceDown';
    // every service up: the rules are loaded and nothing is down yet
    await eventually(async () => {
      const { groups } = await promGet<{ groups: Array<{ name: string; rules: Array<{ name: string; health: string }> }> }>('/api/v1/rules');
      const rule = groups.flatMap((g) => g.rules).find((r) => r.name === 'AgentmeshServiceDown');
      return rule?.health === 'ok';
    }, 'the AgentmeshServiceDown rule to be loaded and evaluated');
    expect((await alerts()).filter(serviceDown)).toEqual([]);

    await mesh.kill('cost-governor');
    const firing = await eventually(async () => (await alerts()).find((a) => serviceDown(a) && a.state === 'firing'),
      'AgentmeshServiceDown to fire', 30_000);
    expect(firing.labels).toMatchObject({ app: 'cost-governor', namespace: 'agentmesh-e2e', severity: 'critical' });
    expect(firing.annotations.summary).toContain('cost-governor');
    expect(firing.annotations.runbook).toBeTruthy();
    // only the dead service is reported
    expect((await alerts()).filter((a) => serviceDown(a) && a.labels.app !== 'cost-governor')).toEqual([]);
  }, 60_000);
});

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { eventually, followEvents, newTenant, startTestMesh, waitForRun, type Api, type Mesh, type SseEvent } from './support/harness.js';

/** `paid` costs $0.25 a call (set through the price table); every other tool is free. */
const PRICES = { tools: { paid: 0.25 } };
const ECHO = { version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'builtin', name: 'echo' } };
const graph = (tools: string[], steps: Array<{ tool: string; args: Record<string, unknown> }>, limits: Record<string, number> = {}) => ({
  version: '1', planner: 'graph', tools, limits, steps: steps.map((s, i) => ({ id: `s${i}`, ...s })),
});
const paidSteps = (n: number) => Array.from({ length: n }, (_, i) => ({ tool: 'paid', args: { i } }));

describe('budgets, the circuit breaker and loop detection', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let slowServer: Server;
  let slowUrl: string;

  /** A tenant with the `paid` and `echo` tools and a few agents. */
  const tenant = async (prefix: string) => {
    const t = await newTenant(mesh, prefix);
    expect((await t.owner('PUT', `/v1/tenants/${t.id}/tools/paid`, ECHO)).status).toBe(201);
    expect((await t.owner('PUT', `/v1/tenants/${t.id}/tools/echo`, ECHO)).status).toBe(201);
    expect((await t.owner('PUT', `/v1/tenants/${t.id}/agents/pay2`, graph(['paid'], paidSteps(2)))).status).toBe(201);
    expect((await t.owner('PUT', `/v1/tenants/${t.id}/agents/pay3`, graph(['paid'], paidSteps(3)))).status).toBe(201);
    return t;
  };
  const start = async (api: Api, t: string, agent: string) => {
    const res = await api('POST', `/v1/tenants/${t}/runs`, { agent, input: {} });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  const journal = async (key: string, t: string, runId: string) => {
    const events: SseEvent[] = [];
    await followEvents(mesh.gatewayUrl, key, `/v1/tenants/${t}/runs/${runId}/events`, (e) => events.push(e));
    return events;
  };

  beforeAll(async () => {
    // a slow free http tool keeps a run busy long enough to stop it mid-way
    slowServer = createServer((req, res) => {
      req.resume();
      setTimeout(() => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"ok":true}'); }, 150);
    });
    await new Promise<void>((r) => slowServer.listen(0, '127.0.0.1', () => r()));
    slowUrl = `127.0.0.1:${(slowServer.address() as AddressInfo).port}`;
    mesh = await startTestMesh({ AGENTMESH_PRICES: JSON.stringify(PRICES) });
  });
  afterAll(async () => {
    await mesh?.cleanup();
    await new Promise((r) => slowServer?.close(r));
  });

  it('refuses a priced call the budget cannot cover: the run ends budget_exceeded before the call, having paid for the others once', async () => {
    const a = await tenant('spend');
    const put = await a.owner('PUT', `/v1/tenants/${a.id}/budget`, { limitUsd: 0.6, period: 'day' });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ limitUsd: 0.6, period: 'day', spentUsd: 0, reservedUsd: 0, remainingUsd: 0.6, state: 'ok' });
    const id = await start(a.owner, a.id, 'pay3');
    const run = await waitForRun(a.owner, a.id, id);
    expect(run).toMatchObject({ status: 'failed', error: { code: 'budget_exceeded' }, cost: { usd: 0.5 } });
    expect(run.error.message).toContain("the tenant's budget of $0.60 per day does not cover this call ($0.25; spent $0.50");
    const types = (await journal(a.ownerKey, a.id, id)).map((e) => e.event);
    expect(types.filter((t) => t === 'tool.called')).toHaveLength(2);
    expect(types.filter((t) => t === 'budget.reserved')).toHaveLength(2);
    expect(types.filter((t) => t === 'budget.settled')).toHaveLength(2);
    expect(types.slice(-2)).toEqual(['step.started', 'run.failed']);
    const budget = await a.owner('GET', `/v1/tenants/${a.id}/budget`);
    expect(budget.body).toMatchObject({ spentUsd: 0.5, reservedUsd: 0, state: 'ok' });
    expect(budget.body.remainingUsd).toBeCloseTo(0.1, 6);

    // at the cap (spent reaches the limit) new runs get 429, and a higher limit lets them start again
    expect((await a.owner('PUT', `/v1/tenants/${a.id}/budget`, { limitUsd: 0.5, period: 'day' })).body).toMatchObject({ state: 'exhausted', remainingUsd: 0 });
    const refused = await eventually(async () => {
      const r = await a.owner('POST', `/v1/tenants/${a.id}/runs`, { agent: 'pay2', input: {} });
      return r.status === 429 ? r : null;
    }, 'a 429 at the cap');
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.body).toMatchObject({ status: 429, code: 'resource_exhausted', reason: 'budget_exceeded' });
    expect(refused.body.detail).toContain('budget');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const viewer = await a.keyFor(['viewer']);
    expect((await viewer.api('POST', `/v1/tenants/${a.id}/runs`, { agent: 'pay2', input: {} })).status).toBe(403); // roles still come first

    expect((await a.owner('PUT', `/v1/tenants/${a.id}/budget`, { limitUsd: 5, period: 'day' })).body).toMatchObject({ state: 'ok', remainingUsd: 4.5 });
    const again = await start(a.owner, a.id, 'pay2');
    expect(await waitForRun(a.owner, a.id, again)).toMatchObject({ status: 'completed', cost: { usd: 0.5 } });
    expect((await a.owner('GET', `/v1/tenants/${a.id}/budget`)).body).toMatchObject({ spentUsd: 1, reservedUsd: 0 });

    // metered: usage by tool and by agent, and the budget gauges on the governor
    const usage = await eventually(async () => {
      const r = await a.owner('GET', `/v1/tenants/${a.id}/usage?groupBy=tool`);
      return r.status === 200 && r.body.totals.calls === 4 ? r.body : null;
    }, 'usage rollups of 4 calls');
    expect(usage).toMatchObject({ groupBy: 'tool', granularity: 'hour', totals: { usd: 1, calls: 4 }, groups: [{ key: 'paid', usd: 1, calls: 4 }] });
    const byAgent = (await a.owner('GET', `/v1/tenants/${a.id}/usage?groupBy=agent&from=${new Date(Date.now() - 86_400_000).toISOString()}`)).body;
    expect(byAgent.groups).toEqual(expect.arrayContaining([expect.objectContaining({ key: 'pay3', usd: 0.5 }), expect.objectContaining({ key: 'pay2', usd: 0.5 })]));
    expect((await a.owner('GET', `/v1/tenants/${a.id}/usage?groupBy=colour`)).status).toBe(400);
    expect((await a.owner('GET', `/v1/tenants/${a.id}/usage?from=yesterday`)).status).toBe(400);
    expect((await a.owner('GET', `/v1/tenants/${a.id}/usage?from=2020-01-01`)).body.detail).toContain('400 days');
    expect((await a.owner('PUT', `/v1/tenants/${a.id}/budget`, { limitUsd: -1, period: 'week' })).status).toBe(400);
    const metrics = await (await fetch(`http://127.0.0.1:${mesh.ports['cost-governor']}/metrics`)).text();
    expect(metrics).toContain(`agentmesh_budget_spent_usd{tenant="${a.id}",service="cost-governor"} 1`);
    expect(metrics).toContain(`agentmesh_budget_limit_usd{tenant="${a.id}",service="cost-governor"} 5`);
    expect(metrics).toContain(`agentmesh_budget_remaining_usd{tenant="${a.id}",service="cost-governor"} 4`);
  });

  it('stops a running run at its next call when the tenant circuit breaker opens, even when its calls are free', async () => {
    const b = await tenant('breaker');
    const [host, port] = slowUrl.split(':');
    const slow = { version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'http', url: `http://${slowUrl}/slow` }, egress: [`${host}:${port}`], timeoutMs: 5000 };
    expect((await b.owner('PUT', `/v1/tenants/${b.id}/tools/slow`, slow)).status).toBe(201);
    const steps = Array.from({ length: 40 }, (_, i) => ({ tool: 'slow', args: { i } }));
    expect((await b.owner('PUT', `/v1/tenants/${b.id}/agents/slow40`, graph(['slow'], steps, { maxSteps: 100 }))).status).toBe(201);
    const id = await start(b.owner, b.id, 'slow40');
    await eventually(async () => (await b.owner('GET', `/v1/tenants/${b.id}/runs/${id}`)).body.steps >= 2, 'the run to be under way');
    // the kill switch: a limit of 0 exhausts the budget at once
    expect((await b.owner('PUT', `/v1/tenants/${b.id}/budget`, { limitUsd: 0, period: 'month' })).body.state).toBe('exhausted');
    const run = await waitForRun(b.owner, b.id, id);
    expect(run.status).toBe('failed');
    expect(run.error.code).toBe('budget_exceeded');
    expect(run.error.message).toContain('circuit breaker');
    expect(run.steps).toBeLessThan(40);
    expect(run.cost.usd).toBe(0);
    const refused = await b.owner('POST', `/v1/tenants/${b.id}/runs`, { agent: 'slow40', input: {} });
    expect(refused.status).toBe(429);
    // raising the budget closes the breaker: new runs start and run to the end
    await b.owner('PUT', `/v1/tenants/${b.id}/budget`, { limitUsd: 1, period: 'month' });
    expect((await b.owner('PUT', `/v1/tenants/${b.id}/agents/echo3`, graph(['echo'], [0, 1, 2].map((i) => ({ tool: 'echo', args: { i } }))))).status).toBe(201);
    const next = await start(b.owner, b.id, 'echo3');
    expect((await waitForRun(b.owner, b.id, next)).status).toBe('completed');
  });

  it('ends a run that asks for the same call again and again with loop_detected', async () => {
    const c = await tenant('loop');
    const same = Array.from({ length: 6 }, () => ({ tool: 'echo', args: { text: 'are we there yet?' } }));
    expect((await c.owner('PUT', `/v1/tenants/${c.id}/agents/nag`, graph(['echo'], same))).status).toBe(201);
    const run = await waitForRun(c.owner, c.id, await start(c.owner, c.id, 'nag'));
    expect(run).toMatchObject({ status: 'failed', steps: 3, error: { code: 'loop_detected' } });
    expect(run.error.message).toContain('same arguments 4 times in a row');
  });

  it('makes a priced run wait while the cost-governor is down and lets it continue when it is back; free runs do not wait', async () => {
    const d = await tenant('outage');
    expect((await d.owner('PUT', `/v1/tenants/${d.id}/budget`, { limitUsd: 10, period: 'month' })).status).toBe(200);
    expect((await d.owner('PUT', `/v1/tenants/${d.id}/agents/free2`, graph(['echo'], [{ tool: 'echo', args: { i: 1 } }, { tool: 'echo', args: { i: 2 } }]))).status).toBe(201);
    await mesh.kill('cost-governor');
    try {
      const id = await start(d.owner, d.id, 'pay2');
      const free = await start(d.owner, d.id, 'free2');
      expect((await waitForRun(d.owner, d.id, free)).status).toBe('completed');
      await new Promise((r) => setTimeout(r, 2500));
      const waiting = (await d.owner('GET', `/v1/tenants/${d.id}/runs/${id}`)).body;
      expect(waiting).toMatchObject({ status: 'running', steps: 1, cost: { usd: 0 } });
      expect((await d.owner('GET', `/v1/tenants/${d.id}/budget`)).status).toBe(503);
    } finally {
      await mesh.restart('cost-governor');
    }
    const runs = (await d.owner('GET', `/v1/tenants/${d.id}/runs?agent=pay2`)).body.runs;
    const run = await waitForRun(d.owner, d.id, runs[0].id);
    expect(run).toMatchObject({ status: 'completed', steps: 2, cost: { usd: 0.5 } });
    const types = (await journal(d.ownerKey, d.id, run.id)).map((e) => e.event);
    expect(types.filter((t) => t === 'budget.settled')).toHaveLength(2);
    expect((await d.owner('GET', `/v1/tenants/${d.id}/budget`)).body).toMatchObject({ spentUsd: 0.5, reservedUsd: 0 });
  });
});

#!/usr/bin/env node
// Budget benchmark: reservations per second and the latency of reserve + settle (the round trips a
// priced call adds) with 50 concurrent runs. Starts a nats-server (JetStream, file store) and the
// cost-governor from dist/ (build first: npx tsc -p tsconfig.build.json), then drives it over NATS
// RPC like the orchestrator does: each run reserves, then settles, call after call.
//   (a) every run charges one shared tenant budget (the contended case: one KV document);
//   (b) each run charges its own tenant.
// Prints the figures and writes bench/results/budget.json.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort } from './mesh.mjs';
import { connectNats, RpcClient } from '../dist/libs/messaging/src/index.js';

const RUNS_AT_ONCE = Number(process.env.BENCH_RUNS ?? 50);
const SINGLE_CALLS = 1000;
const CALLS_PER_RUN = Number(process.env.BENCH_CALLS_PER_RUN ?? 200);
const WARMUP_CALLS = 500;
const PRICE = 0.002;

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const round = (n) => Math.round(n * 1000) / 1000;
const waitFor = async (check, what, ms = 30_000) => {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

const dir = mkdtempSync(join(tmpdir(), 'agentmesh-bench-budget-'));
const natsPort = await freePort();
const httpPort = await freePort();
writeFileSync(join(dir, 'nats.conf'), `listen: 127.0.0.1:${natsPort}\njetstream { store_dir: "${join(dir, 'js')}" }\n`);
const nats = spawn(process.env.NATS_SERVER_BIN ?? 'nats-server', ['-c', join(dir, 'nats.conf')], { stdio: 'ignore' });
const natsUrl = `nats://127.0.0.1:${natsPort}`;
let governor;
let nc;
try {
  await waitFor(async () => { const c = await connectNats(natsUrl, 'probe'); await c.close(); return true; }, 'nats-server');
  const nodeArgs = (process.env.AGENTMESH_NODE_ARGS ?? '').split(' ').filter(Boolean); // e.g. --cpu-prof
  governor = spawn(process.execPath, [...nodeArgs, join(ROOT, 'dist/apps/cost-governor/src/main.js')], {
    cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, NATS_URL: natsUrl, COST_GOVERNOR_PORT: String(httpPort), LOG_LEVEL: 'warn', AGENTMESH_DATA_DIR: dir },
  });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200, 'the cost-governor');
  nc = await connectNats(natsUrl, 'bench-budget');
  const rpc = new RpcClient(nc, 10_000);

  /** `runs` runs of `calls` priced calls each, all at once; tenantOf(run) picks the budget. */
  const scenario = async (label, tenantOf, calls = CALLS_PER_RUN, runs = RUNS_AT_ONCE) => {
    const tenants = [...new Set(Array.from({ length: runs }, (_, r) => tenantOf(r)))];
    for (const t of tenants) await rpc.call('budget.put', { tenantId: t, budget: { limitUsd: 1_000_000, period: 'month' } });
    const pairMs = [];
    const reserveMs = [];
    let refused = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: runs }, async (_, r) => {
      const tenantId = tenantOf(r);
      const runId = `run_${label}${r}`;
      for (let step = 1; step <= calls; step++) {
        const callKey = `${runId}:${step}:0`;
        const a = process.hrtime.bigint();
        const res = await rpc.call('budget.reserve', { tenantId, callKey, runId, agent: 'bench', kind: 'tool', tool: 'priced', usd: PRICE, run: { spentUsd: 0 } });
        const b = process.hrtime.bigint();
        if (!res.granted) refused++;
        await rpc.call('budget.settle', { tenantId, callKey, usd: PRICE });
        const c = process.hrtime.bigint();
        reserveMs.push(Number(b - a) / 1e6);
        pairMs.push(Number(c - a) / 1e6);
      }
    }));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const views = await Promise.all(tenants.map((t) => rpc.call('budget.get', { tenantId: t })));
    const spent = views.reduce((s, v) => s + v.spentUsd, 0);
    const expected = runs * calls * PRICE;
    if (Math.abs(spent - expected) > 1e-6 || views.some((v) => v.reservedUsd !== 0)) throw new Error(`${label}: spent ${spent}, expected ${expected}`);
    return {
      runs, callsPerRun: calls, reservations: pairMs.length, refused, tenants: tenants.length, seconds: round(seconds),
      reservationsPerSecond: Math.round(pairMs.length / seconds),
      reserveSettleP50Ms: round(pct(pairMs, 50)), reserveSettleP99Ms: round(pct(pairMs, 99)),
      reserveP50Ms: round(pct(reserveMs, 50)), reserveP99Ms: round(pct(reserveMs, 99)),
    };
  };

  await scenario('warm', () => 'warmup', Math.ceil(WARMUP_CALLS / RUNS_AT_ONCE));
  const shared = await scenario('s', () => 'bench-shared');
  const perTenant = await scenario('t', (r) => `bench-t${r}`);
  const single = await scenario('one', () => 'bench-single', SINGLE_CALLS, 1);

  const results = {
    at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    setup: 'nats-server 2.9 (JetStream, file store) + one cost-governor process + this client, on one machine; the client does what the orchestrator does for a priced call: budget.reserve then budget.settle over NATS RPC, one call at a time per run, 50 runs at once (and one run alone); every settled call is also recorded, published to AGENTMESH_USAGE and folded into hourly rollups',
    sharedBudget: shared,
    budgetPerRun: perTenant,
    oneRunAtATime: single,
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/budget.json'), `${JSON.stringify(results, null, 2)}\n`);
  for (const [name, r] of [['50 runs, one shared tenant budget', shared], ['50 runs, one tenant budget per run', perTenant], ['one run at a time', single]]) {
    console.log(`${name}: ${r.reservationsPerSecond} reservations/s (reserve+settle pairs), reserve+settle p50 ${r.reserveSettleP50Ms} ms, p99 ${r.reserveSettleP99Ms} ms; reserve alone p99 ${r.reserveP99Ms} ms (${r.runs} runs x ${r.callsPerRun} calls)`);
  }
  console.log('written to bench/results/budget.json');
} finally {
  await nc?.close().catch(() => {});
  if (governor && governor.exitCode === null) { governor.kill('SIGTERM'); await new Promise((r) => governor.once('exit', r)); }
  nats.kill('SIGTERM');
  await new Promise((r) => nats.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}

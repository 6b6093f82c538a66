#!/usr/bin/env node
// Router overhead benchmark (build first: npx tsc -p tsconfig.build.json).
//
// (1) Added latency: a replica simulator with zero prefill and decode time runs in its own
//     process; the inference-router runs from dist/ in its own process (nats-server with JetStream
//     for its pins), configured with that simulator as its only replica. This client sends the
//     same small chat request, one at a time, in rotation straight to the simulator and through
//     the router (sticky sessions: every routed turn after a session's first is an affinity hit),
//     over keep-alive connections, and through a bare Node HTTP proxy as a reference for what any
//     extra hop costs on the machine. The router's added latency is the difference of the
//     paired latencies (each routed request minus the direct one next to it); the router's own view (Server-Timing `router;dur`: time in the router
//     outside the upstream call) is reported too.
// (2) Routing decision: ModelPools.route (the SessionRouter per model behind the service) timed one
//     call at a time in this process: 8 replicas, 2 models, 4000 live sessions, 10% of decisions
//     a new session replacing an ended one; and the same through the admission queue.
//
// Prints the figures and writes bench/results/router.json. Env: BENCH_REQUESTS (default 3000),
// BENCH_DECISIONS (default 200000).
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { ROOT, freePort } from './mesh.mjs';
import { ModelPools } from '../dist/apps/inference-router/src/pools.js';
import { AdmissionQueue } from '../dist/apps/inference-router/src/admission.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const WARMUP = 500;
const DECISIONS = Number(process.env.BENCH_DECISIONS ?? 200_000);
const TOKEN = 'bench-router-token-0123456789';
const TARGETS = { addedLatencyP50Ms: 1, routeDecisionP99Us: 50 };

const pct = (xs, p) => { const s = Float64Array.from(xs).sort(); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const round = (n, d = 3) => Math.round(n * 10 ** d) / 10 ** d;
const stats = (xs) => ({ p50: round(pct(xs, 50)), p90: round(pct(xs, 90)), p99: round(pct(xs, 99)), mean: round(xs.reduce((a, b) => a + b, 0) / xs.length) });
const waitFor = async (check, what, ms = 30_000) => {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

// ---------------------------------------------------------------- (2) routing decision, in process
function routingDecision() {
  const replicas = Array.from({ length: 8 }, (_, i) => `replica-${i}`);
  const models = ['frontier', 'cheap'];
  const pools = new ModelPools({ ttlMs: 600_000, loadFactor: 1.25 }, { pinned() {}, released() {} });
  for (const id of replicas) pools.upsertReplica({ id, models, capacity: 1000, weight: 1, up: true });
  let seed = 42;
  const rnd = () => { seed = (seed * 1664525 + 1013904223) >>> 0; return seed / 2 ** 32; };
  const live = [];
  let next = 0;
  let now = Date.now();
  for (; next < 4000; next++) {
    live.push({ tenant: `tenant-${next % 13}`, session: `s${next}`, model: models[next % 2] });
    pools.route(live[next].model, live[next].tenant, live[next].session, now);
  }
  const time = (decide) => {
    const ns = new Float64Array(DECISIONS);
    const outcomes = { hit: 0, new: 0, moved: 0, refused: 0 };
    for (let i = -20_000; i < DECISIONS; i++) {
      now += 1;
      const slot = Math.floor(rnd() * live.length);
      if (rnd() < 0.1) {
        const old = live[slot];
        pools.release(old.tenant, old.session);
        live[slot] = { tenant: `tenant-${next % 13}`, session: `s${next}`, model: models[next % 2] };
        next++;
      }
      const s = live[slot];
      const t0 = process.hrtime.bigint();
      const d = decide(s);
      const t1 = process.hrtime.bigint();
      if (i >= 0) {
        ns[i] = Number(t1 - t0);
        outcomes[d.ok ? d.outcome : 'refused']++;
      }
    }
    const us = Array.from(ns, (x) => x / 1000);
    return { decisions: DECISIONS, us: { p50: round(pct(us, 50)), p99: round(pct(us, 99)), p999: round(pct(us, 99.9)), max: round(us.reduce((a, b) => (b > a ? b : a), 0)) }, outcomes };
  };
  const direct = time((s) => pools.route(s.model, s.tenant, s.session, now));
  // through the admission queue as the service calls it (placements succeed at once here; the
  // promise it returns resolves on the next microtask, outside the timed section)
  const queue = new AdmissionQueue({ maxWaitMs: 2000, maxQueue: 1000 });
  const admitted = time((s) => { let d; void queue.admit((t) => (d = pools.route(s.model, s.tenant, s.session, t))); return d; });
  return { replicas: replicas.length, models: models.length, liveSessions: live.length, newSessionShare: 0.1, route: direct, admitAndRoute: admitted };
}

// ---------------------------------------------------------------- (1) added latency, end to end
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
function post(port, body, headers) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode} from :${port}: ${Buffer.concat(parts).toString()}`));
        const timing = /router;dur=([\d.]+)/.exec(res.headers['server-timing'] ?? '');
        resolve({ ms, routerMs: timing ? Number(timing[1]) : undefined, replica: res.headers['x-agentmesh-replica'], placement: res.headers['x-agentmesh-placement'] });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const dir = mkdtempSync(join(tmpdir(), 'agentmesh-bench-router-'));
const children = [];
const spawnNode = (args, env) => {
  const c = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  children.push(c);
  return c;
};
let result;
const loadBefore = loadavg()[0];
try {
  const decision = routingDecision();

  const natsPort = await freePort();
  writeFileSync(join(dir, 'nats.conf'), `listen: 127.0.0.1:${natsPort}\njetstream { store_dir: "${join(dir, 'js')}" }\n`);
  const nats = spawn(process.env.NATS_SERVER_BIN ?? 'nats-server', ['-c', join(dir, 'nats.conf')], { stdio: 'ignore' });
  children.push(nats);

  const simPort = await freePort();
  const sim = spawnNode([join(ROOT, 'dist/apps/inference-router/src/simulator/main.js'), '--port', String(simPort), '--replica-id', 'bench-sim',
    '--prefill-ms-per-token', '0', '--prefill-overhead-ms', '0', '--decode-ms-per-step', '0', '--decode-ms-per-seq', '0']);
  sim.stdout.resume();
  await waitFor(async () => (await fetch(`http://127.0.0.1:${simPort}/health`)).status === 200, 'the simulator');

  const routerPort = await freePort();
  const nodeArgs = (process.env.AGENTMESH_NODE_ARGS ?? '').split(' ').filter(Boolean); // e.g. --cpu-prof
  const router = spawnNode([...nodeArgs, join(ROOT, 'dist/apps/inference-router/src/main.js')], {
    NATS_URL: `nats://127.0.0.1:${natsPort}`, INFERENCE_ROUTER_PORT: String(routerPort), LOG_LEVEL: 'warn', AGENTMESH_DATA_DIR: dir,
    AGENTMESH_INFERENCE_TOKEN: TOKEN,
    AGENTMESH_REPLICAS: JSON.stringify([{ id: 'bench-sim', url: `http://127.0.0.1:${simPort}`, models: ['sim-70b'], capacity: null }]),
  });
  router.stdout.resume();
  await waitFor(async () => (await fetch(`http://127.0.0.1:${routerPort}/readyz`)).status === 200, 'the inference-router');

  // reference: the cheapest possible extra hop, a bare Node HTTP proxy (keep-alive, one JSON parse and stringify)
  const bareProxyPort = await freePort();
  const bareProxy = spawnNode(['--input-type=module', '-e', `
    import { createServer, request, Agent } from 'node:http';
    const agent = new Agent({ keepAlive: true });
    createServer((req, res) => {
      const parts = [];
      req.on('data', (c) => parts.push(c));
      req.on('end', () => {
        const body = Buffer.concat(parts);
        const r = request({ host: '127.0.0.1', port: ${simPort}, path: req.url, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (up) => {
          const out = [];
          up.on('data', (c) => out.push(c));
          up.on('end', () => {
            const b = Buffer.concat(out);
            if (up.headers['content-type'] === 'text/event-stream') { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.end(b); return; }
            const s = JSON.stringify(JSON.parse(b.toString()));
            res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
            res.end(s);
          });
        });
        r.end(body);
      });
    }).listen(${bareProxyPort}, '127.0.0.1');
  `]);
  bareProxy.stdout.resume();
  await waitFor(async () => { await post(bareProxyPort, '{}', {}).catch((e) => { if (/ECONNREFUSED/.test(e.message)) throw e; }); return true; }, 'the bare proxy');

  const body = JSON.stringify({ model: 'sim-70b', messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Reply with one word.' }], max_tokens: 1 });
  const streamBody = JSON.stringify({ model: 'sim-70b', messages: [{ role: 'user', content: 'Reply with four words.' }], max_tokens: 4, stream: true });
  const routed = (b, i) => post(routerPort, b, { authorization: `Bearer ${TOKEN}`, 'x-agentmesh-tenant': 'bench', 'x-agentmesh-session': `sess-${i % 50}` });
  const direct = (b) => post(simPort, b, {});

  const bare = (b) => post(bareProxyPort, b, {});
  const measure = async (b, n) => {
    for (let i = 0; i < WARMUP; i++) { await direct(b); await bare(b); await routed(b, i); }
    const d = [];
    const p = [];
    const r = [];
    const inRouter = [];
    const placements = {};
    const viaRouter = async (i) => {
      const x = await routed(b, i);
      r.push(x.ms);
      if (x.routerMs !== undefined) inRouter.push(x.routerMs);
      placements[x.placement] = (placements[x.placement] ?? 0) + 1;
    };
    for (let i = 0; i < n; i++) {
      // rotate the order, so drift (GC, CPU frequency, other load on the machine) hits every path alike
      const steps = [async () => d.push((await direct(b)).ms), async () => p.push((await bare(b)).ms), () => viaRouter(i)];
      for (let k = 0; k < 3; k++) await steps[(i + k) % 3]();
    }
    // added latency: per iteration, the routed request minus the direct one sent just before or after it
    const pairedRouter = r.map((x, i) => x - d[i]);
    const pairedBare = p.map((x, i) => x - d[i]);
    return {
      requests: n,
      directMs: stats(d),
      bareProxyMs: stats(p),
      routedMs: stats(r),
      addedMs: stats(pairedRouter),
      bareProxyAddedMs: stats(pairedBare),
      routerServerTimingMs: inRouter.length ? stats(inRouter) : null,
      placements,
    };
  };
  const nonStreaming = await measure(body, REQUESTS);
  const streaming = await measure(streamBody, Math.max(500, Math.floor(REQUESTS / 3)));

  result = {
    at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, loadAverage1m: { before: round(loadBefore, 2), after: round(loadavg()[0], 2) } },
    setup: 'one machine: nats-server 2.9 (JetStream, the router\'s pins in KV) + the inference-router process from dist/ + one replica simulator process with zero prefill/decode time (model time 0; each request still takes the simulator\'s own event-loop turns) + this client; one request at a time over keep-alive HTTP, rotating between direct-to-simulator, through a bare Node HTTP proxy (the floor of any extra hop, for reference) and through the router; routed requests carry one of 50 session ids (sticky: affinity hits after the first turn of each)',
    targets: TARGETS,
    addedLatency: { nonStreaming, streaming },
    routingDecision: decision,
    verdict: {
      addedLatencyP50Ms: nonStreaming.addedMs.p50,
      addedLatencyP50MetTarget: nonStreaming.addedMs.p50 < TARGETS.addedLatencyP50Ms,
      routeDecisionP99Us: decision.route.us.p99,
      routeDecisionP99MetTarget: decision.route.us.p99 < TARGETS.routeDecisionP99Us,
    },
  };
} finally {
  for (const c of children.reverse()) { if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM'); }
  await new Promise((r) => setTimeout(r, 300));
  rmSync(dir, { recursive: true, force: true });
  agent.destroy();
}

const n = result.addedLatency.nonStreaming;
const s = result.addedLatency.streaming;
const d = result.routingDecision;
const line = (label, x) => `${label.padEnd(34)} p50 ${String(x.p50).padStart(7)}  p90 ${String(x.p90).padStart(7)}  p99 ${String(x.p99).padStart(7)}  mean ${String(x.mean).padStart(7)}`;
console.log(`# Router overhead (${result.machine.cpus} CPUs, ${result.machine.node}, load average ${result.machine.loadAverage1m.before} → ${result.machine.loadAverage1m.after})`);
console.log(`non-streaming, max_tokens 1, ${n.requests} requests each way (ms):`);
console.log(line('  direct to the simulator', n.directMs));
console.log(line('  through a bare Node proxy', n.bareProxyMs));
console.log(line('  through the router', n.routedMs));
console.log(line('  added by the router (paired)', n.addedMs));
console.log(line('  added by a bare proxy (reference)', n.bareProxyAddedMs));
if (n.routerServerTimingMs) console.log(line('  router Server-Timing (in router)', n.routerServerTimingMs));
console.log(`  placements: ${JSON.stringify(n.placements)}`);
console.log(`streaming, max_tokens 4, ${s.requests} requests each way (ms):`);
console.log(line('  direct to the simulator', s.directMs));
console.log(line('  through a bare Node proxy', s.bareProxyMs));
console.log(line('  through the router', s.routedMs));
console.log(line('  added by the router (paired)', s.addedMs));
console.log(line('  added by a bare proxy (reference)', s.bareProxyAddedMs));
console.log(`routing decision (${d.replicas} replicas, ${d.models} models, ${d.liveSessions} live sessions, ${d.newSessionShare * 100}% new), ${d.route.decisions} decisions (µs):`);
console.log(`  ModelPools.route        p50 ${d.route.us.p50}  p99 ${d.route.us.p99}  p99.9 ${d.route.us.p999}  max ${d.route.us.max}  ${JSON.stringify(d.route.outcomes)}`);
console.log(`  admission + route       p50 ${d.admitAndRoute.us.p50}  p99 ${d.admitAndRoute.us.p99}  p99.9 ${d.admitAndRoute.us.p999}  max ${d.admitAndRoute.us.max}`);
console.log(`targets: added p50 < ${TARGETS.addedLatencyP50Ms} ms: ${result.verdict.addedLatencyP50MetTarget ? 'met' : 'NOT met'} (${result.verdict.addedLatencyP50Ms} ms); decision p99 < ${TARGETS.routeDecisionP99Us} µs: ${result.verdict.routeDecisionP99MetTarget ? 'met' : 'NOT met'} (${result.verdict.routeDecisionP99Us} µs)`);
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/router.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log('wrote bench/results/router.json');
process.exit(0);

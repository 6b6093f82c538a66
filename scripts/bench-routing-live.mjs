#!/usr/bin/env node
// Live routing benchmark (`npm run bench:routing:live`, which builds first; or node scripts/bench-routing-live.mjs after npx tsc -p tsconfig.build.json).
//
// Replays the routing benchmark's multi-turn agent trace (bench/routing/trace.ts, same generator
// and seed) through the REAL inference-router process against 4 REAL replica-simulator processes
// (apps/inference-router/src/simulator), once per routing policy (AGENTMESH_ROUTER_POLICY). Each
// policy gets a fresh nats-server, fresh simulators (cold KV caches) and a fresh router.
//
// Time is scaled so a run takes minutes: every model duration (prefill, decode) runs `timeScale`
// times as fast in the simulators (--time-scale), and the trace's arrivals, tool gaps and the
// router's pin TTL are scaled alike. Reported times are converted back to model time (divided by
// the scale), so they compare with the discrete-event simulation, which this script also runs on
// the same trace (bench/routing/des.ts) for the side-by-side ratios.
//
// Each turn is a streamed POST /v1/chat/completions with the session as the affinity key: the
// messages are a system prompt shared by the session's agent type, the task, then per earlier turn
// the model's reply and the tool result (text of the trace's token counts, 4 characters a token as
// the simulator counts). TTFT = turn sent → first streamed chunk; JCT = first turn sent → last
// turn's last chunk, tool gaps included; hit rate and prefill tokens from the simulators' /stats;
// peak/avg load = max/mean over replicas of requests served (and of busy time).
//
//   node scripts/bench-routing-live.mjs [--sessions 200] [--rate 0.5] [--time-scale 0.1] [--seed 42]
//        [--policies round-robin,least-loaded,consistent-hash,bounded-sticky] [--out-dir bench/results]
//
// Writes bench/results/routing-live.json and routing-live.md.
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, freePort } from './mesh.mjs';
import { DEFAULT_TRACE, generateTrace } from '../dist/bench/routing/trace.js';
import { simulate } from '../dist/bench/routing/des.js';
import { DEFAULT_REPLICA_PARAMS } from '../dist/apps/inference-router/src/simulator/engine.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '200' },
    rate: { type: 'string', default: String(DEFAULT_TRACE.arrivalsPerSec) },
    'time-scale': { type: 'string', default: '0.1' },
    seed: { type: 'string', default: String(DEFAULT_TRACE.seed) },
    policies: { type: 'string', default: 'round-robin,least-loaded,consistent-hash,bounded-sticky' },
    replicas: { type: 'string', default: '4' },
    'out-dir': { type: 'string' },
    // rewrites the report from a saved routing-live.json without running anything
    'from-json': { type: 'string' },
  },
});
const saved = values['from-json'] ? JSON.parse(readFileSync(values['from-json'], 'utf8')) : undefined;
const SCALE = saved ? saved.setup.timeScale : Number(values['time-scale']);
const REPLICAS = Number(values.replicas);
const POLICIES = saved ? saved.live.map((r) => r.policy) : values.policies.split(',').map((p) => p.trim()).filter(Boolean);
const TOKEN = 'bench-routing-live-token-0123456789';
const CHARS_PER_TOKEN = 4;
/** The DES's router settings (bench/routing/run.ts), applied to the real router. */
const ROUTER = { ttlMs: 30_000, loadFactor: 1.25, defaultCapacity: 48, vnodes: 160, seed: 0 };
const MAX_RETRY_WAIT_MS = 1000;
if (!(SCALE > 0 && SCALE <= 1)) throw new Error('--time-scale must be in (0, 1]');

const traceParams = saved ? saved.setup.trace : { ...DEFAULT_TRACE, seed: Number(values.seed), sessions: Number(values.sessions), arrivalsPerSec: Number(values.rate) };
const trace = generateTrace(traceParams);

const log = (line = '') => process.stdout.write(`${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => { if (xs.length === 0) return NaN; const s = Float64Array.from(xs).sort(); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const r3 = (n) => Math.round(n * 1000) / 1000;
const waitFor = async (check, what, ms = 30_000) => {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
};

// ---------------------------------------------------------------- prompt text of the trace's sizes
/** `tokens` tokens of text (as the simulator counts: 4 characters a token), distinct per `tag`. */
function text(tag, tokens) {
  const n = Math.max(1, tokens) * CHARS_PER_TOKEN;
  const unit = `${tag} `;
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}
const systemText = trace.systemTokensByType.map((t, i) => text(`agent-type-${i} system prompt and tool schemas`, t));

// ---------------------------------------------------------------- one turn, streamed through the router
let agent = new Agent({ keepAlive: true, maxSockets: 512 });
function streamTurn(port, session, tenant, messages, maxTokens) {
  const body = JSON.stringify({ model: 'sim-70b', messages, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } });
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    let first;
    const req = request({
      host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${TOKEN}`, 'x-agentmesh-tenant': tenant, 'x-agentmesh-session': session },
    }, (res) => {
      const parts = [];
      res.on('data', (c) => {
        if (first === undefined && res.statusCode === 200) first = performance.now();
        parts.push(c);
      });
      res.on('end', () => {
        const end = performance.now();
        const raw = Buffer.concat(parts).toString('utf8');
        if (res.statusCode !== 200) {
          resolvePromise({ status: res.statusCode, retryAfterS: Number(res.headers['retry-after'] ?? 1), body: raw.slice(0, 300) });
          return;
        }
        let content = '';
        let usage;
        for (const frame of raw.split('\n\n')) {
          if (!frame.startsWith('data: ') || frame === 'data: [DONE]') continue;
          const c = JSON.parse(frame.slice(6));
          if (c.usage) usage = c.usage;
          for (const ch of c.choices ?? []) if (ch.delta?.content) content += ch.delta.content;
        }
        resolvePromise({ status: 200, sentAt: t0, firstAt: first, endAt: end, content, usage, replica: res.headers['x-agentmesh-replica'] });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function replaySession(port, s, out) {
  const tenant = `tenant-${s.index % 7}`;
  const session = `session-${s.index}`;
  const messages = [{ role: 'system', content: systemText[s.agentType] }, { role: 'user', content: text(`task of session ${s.index}`, s.turns[0].promptTokens - s.systemTokens) }];
  let jobStart;
  const replicas = new Set();
  for (let k = 0; k < s.turns.length; k++) {
    const turn = s.turns[k];
    const arrivedAt = performance.now();
    let r;
    for (let attempt = 1; ; attempt++) {
      try {
        r = await streamTurn(port, session, tenant, messages, turn.outputTokens);
      } catch (e) {
        // a dropped connection (a stale keep-alive socket, an overloaded machine): send the turn again
        if (attempt >= 3 || !['ECONNRESET', 'EPIPE', 'ECONNREFUSED'].includes(e.code)) throw e;
        out.connectionErrors++;
        await sleep(50);
        continue;
      }
      if (r.status === 200) break;
      if (r.status !== 429 && r.status !== 503) throw new Error(`turn ${k} of ${session}: HTTP ${r.status} ${r.body}`);
      out.refusals++;
      await sleep(Math.min(r.retryAfterS * 1000, MAX_RETRY_WAIT_MS) * SCALE);
    }
    jobStart ??= arrivedAt;
    replicas.add(r.replica);
    out.ttftMs.push((r.firstAt - arrivedAt) / SCALE);
    out.turnMs.push((r.endAt - arrivedAt) / SCALE);
    out.promptTokens += r.usage?.prompt_tokens ?? 0;
    out.cachedTokens += r.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    out.requests++;
    if (k === s.turns.length - 1) {
      out.jctMs.push((r.endAt - jobStart) / SCALE);
      out.inferenceMs.push((r.endAt - jobStart) / SCALE - s.turns.reduce((a, t) => a + t.toolGapMs, 0));
      break;
    }
    messages.push({ role: 'assistant', content: r.content });
    await sleep(turn.toolGapMs * SCALE);
    messages.push({ role: 'user', content: text(`tool result ${k} of session ${s.index}`, turn.toolResultTokens) });
  }
  out.replicasPerSession.push(replicas.size);
}

// ---------------------------------------------------------------- one policy: fresh processes
async function runPolicy(policy) {
  const dir = mkdtempSync(join(tmpdir(), `agentmesh-bench-live-${policy}-`));
  const children = [];
  const spawnProc = (cmd, args, env = {}, stderr = 'inherit') => {
    const c = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'ignore', stderr], env: { ...process.env, ...env } });
    children.push(c);
    return c;
  };
  try {
    const natsPort = await freePort();
    writeFileSync(join(dir, 'nats.conf'), `listen: 127.0.0.1:${natsPort}\njetstream { store_dir: "${join(dir, 'js')}" }\n`);
    spawnProc(process.env.NATS_SERVER_BIN ?? 'nats-server', ['-c', join(dir, 'nats.conf')], {}, 'ignore');

    const sims = [];
    for (let i = 0; i < REPLICAS; i++) {
      const port = await freePort();
      spawnProc(process.execPath, [join(ROOT, 'dist/apps/inference-router/src/simulator/main.js'), '--port', String(port), '--replica-id', `replica-${i}`, '--time-scale', String(SCALE)]);
      sims.push({ id: `replica-${i}`, url: `http://127.0.0.1:${port}` });
    }
    for (const s of sims) await waitFor(async () => (await fetch(`${s.url}/health`)).status === 200, `simulator ${s.id}`);

    const routerPort = await freePort();
    const ttl = `${Math.max(1, Math.round(ROUTER.ttlMs * SCALE))}ms`;
    spawnProc(process.execPath, [join(ROOT, 'dist/apps/inference-router/src/main.js')], {
      NATS_URL: `nats://127.0.0.1:${natsPort}`, INFERENCE_ROUTER_PORT: String(routerPort), LOG_LEVEL: 'warn', AGENTMESH_DATA_DIR: dir,
      AGENTMESH_INFERENCE_TOKEN: TOKEN,
      AGENTMESH_REPLICAS: JSON.stringify(sims.map((s) => ({ id: s.id, url: s.url, models: ['sim-70b'], capacity: ROUTER.defaultCapacity }))),
      AGENTMESH_ROUTER_POLICY: policy,
      AGENTMESH_ROUTER_LOAD_FACTOR: String(ROUTER.loadFactor),
      AGENTMESH_ROUTER_PIN_TTL: ttl,
      AGENTMESH_ROUTER_PIN_GC: ttl,
      AGENTMESH_ROUTER_ADMISSION_WAIT: `${Math.max(1, Math.round(MAX_RETRY_WAIT_MS * SCALE))}ms`,
    });
    const routerUrl = `http://127.0.0.1:${routerPort}`;
    await waitFor(async () => (await fetch(`${routerUrl}/readyz`)).status === 200, 'the inference-router');

    agent.destroy();
    agent = new Agent({ keepAlive: true, maxSockets: 512 });
    const out = { ttftMs: [], turnMs: [], jctMs: [], inferenceMs: [], replicasPerSession: [], promptTokens: 0, cachedTokens: 0, requests: 0, refusals: 0, connectionErrors: 0 };
    const t0 = performance.now();
    const load0 = loadavg()[0];
    let lag = 0;
    let lagMax = 0;
    let lagN = 0;
    let tick = performance.now();
    const lagTimer = setInterval(() => { const now = performance.now(); const l = Math.max(0, now - tick - 100); lag += l; lagN++; lagMax = Math.max(lagMax, l); tick = now; }, 100);
    await Promise.all(trace.sessions.map(async (s) => {
      await sleep(s.arrivalMs * SCALE);
      await replaySession(routerPort, s, out);
    }));
    clearInterval(lagTimer);
    const wallMs = performance.now() - t0;
    const stats = await Promise.all(sims.map(async (s) => (await fetch(`${s.url}/stats`)).json()));
    const metrics = await (await fetch(`${routerUrl}/metrics`)).text();
    const outcomes = {};
    for (const m of metrics.matchAll(/^agentmesh_router_assignments_total\{([^}]*)\} (\S+)$/gm)) {
      const outcome = /outcome="([^"]*)"/.exec(m[1])?.[1] ?? '?';
      outcomes[outcome] = (outcomes[outcome] ?? 0) + Number(m[2]);
    }
    const reqs = stats.map((x) => x.requests);
    const busy = stats.map((x) => x.busyMs);
    const promptTokens = stats.reduce((a, x) => a + x.promptTokens, 0);
    const cachedTokens = stats.reduce((a, x) => a + x.cachedTokens, 0);
    return {
      policy,
      requests: out.requests,
      sessions: trace.sessions.length,
      promptTokens,
      cachedTokens,
      prefillTokens: stats.reduce((a, x) => a + x.prefillTokens, 0),
      prefixCacheHitRate: cachedTokens / promptTokens,
      clientSeen: { promptTokens: out.promptTokens, cachedTokens: out.cachedTokens },
      ttftMs: { mean: mean(out.ttftMs), p50: pct(out.ttftMs, 50), p99: pct(out.ttftMs, 99) },
      turnLatencyMs: { mean: mean(out.turnMs), p99: pct(out.turnMs, 99) },
      jctMs: { mean: mean(out.jctMs), p50: pct(out.jctMs, 50), p99: pct(out.jctMs, 99) },
      inferenceTimePerJobMs: { mean: mean(out.inferenceMs) },
      peakToAverage: { requests: Math.max(...reqs) / mean(reqs), busyTime: Math.max(...busy) / mean(busy) },
      perReplica: stats.map((x) => ({ id: x.replicaId, requests: x.requests, busyMs: Math.round(x.busyMs), prefillTokens: x.prefillTokens, hitRate: r3(x.cacheHitRate), peakWaiting: x.peakWaiting })),
      replicasPerSession: mean(out.replicasPerSession),
      refusals: out.refusals,
      connectionErrors: out.connectionErrors,
      routerAssignments: outcomes,
      wallMs: Math.round(wallMs),
      makespanModelMs: Math.round(wallMs / SCALE),
      clientEventLoopLagMs: { mean: r3(lag / Math.max(1, lagN)), max: r3(lagMax) },
      loadAverage1m: { before: r3(load0), after: r3(loadavg()[0]) },
    };
  } finally {
    for (const c of children.reverse()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await sleep(500);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- main
const prompts = trace.sessions.flatMap((s) => s.turns.map((t) => t.promptTokens));
log(`# Live routing benchmark: the inference-router process + ${REPLICAS} replica-simulator processes`);
log(`trace: seed ${traceParams.seed}, ${traceParams.sessions} sessions × ${traceParams.turnsPerSession} turns at ${traceParams.arrivalsPerSec} sessions/s, mean prompt ${Math.round(mean(prompts))} tokens; time scale ${SCALE} (model time runs ${r3(1 / SCALE)}× faster; figures below are in model time)`);
const live = saved ? saved.live : [];
for (const policy of saved ? [] : POLICIES) {
  log(`running ${policy}...`);
  const r = await runPolicy(policy);
  live.push(r);
  log(`  ${policy}: wall ${(r.wallMs / 1000).toFixed(1)} s, hit rate ${(r.prefixCacheHitRate * 100).toFixed(1)}%, JCT mean ${(r.jctMs.mean / 1000).toFixed(1)} s, refusals ${r.refusals}, client lag mean ${r.clientEventLoopLagMs.mean} ms`);
}

const cluster = { replicas: REPLICAS, replica: DEFAULT_REPLICA_PARAMS, router: ROUTER, maxRetryWaitMs: MAX_RETRY_WAIT_MS };
const des = POLICIES.map((p) => simulate(trace, p, cluster));

const pctS = (x) => `${(x * 100).toFixed(1)}%`;
const s1 = (ms) => (ms / 1000).toFixed(2);
const row = (r) => `| ${r.policy} | ${pctS(r.prefixCacheHitRate)} | ${r.prefillTokens.toLocaleString('en-US')} | ${s1(r.ttftMs.mean)} | ${s1(r.ttftMs.p99)} | ${s1(r.jctMs.mean)} | ${s1(r.inferenceTimePerJobMs.mean)} | ${r.peakToAverage.requests.toFixed(3)} | ${r.peakToAverage.busyTime.toFixed(3)} | ${r.refusals} |`;
const header = '| policy | prefix-cache hit rate | prefill tokens computed | TTFT mean (s) | TTFT p99 (s) | JCT mean (s) | inference time / job (s) | peak/avg load (requests) | peak/avg busy time | refusals |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
const liveTable = `${header}\n${live.map(row).join('\n')}`;
const desTable = `${header}\n${des.map(row).join('\n')}`;

const ratio = (rows, metric) => {
  const rr = rows.find((r) => r.policy === 'round-robin');
  return Object.fromEntries(rows.filter((r) => r !== rr).map((r) => [r.policy, rr ? r3(metric(rr) / metric(r)) : null]));
};
const comparison = {
  jctSpeedupVsRoundRobin: { live: ratio(live, (r) => r.jctMs.mean), simulation: ratio(des, (r) => r.jctMs.mean) },
  ttftSpeedupVsRoundRobin: { live: ratio(live, (r) => r.ttftMs.mean), simulation: ratio(des, (r) => r.ttftMs.mean) },
  prefillReductionVsRoundRobin: { live: ratio(live, (r) => r.prefillTokens), simulation: ratio(des, (r) => r.prefillTokens) },
};
const sticky = live.find((r) => r.policy === 'bounded-sticky');
const rr = live.find((r) => r.policy === 'round-robin');
const verdict = sticky && rr ? {
  jctSpeedupVsRoundRobin: r3(rr.jctMs.mean / sticky.jctMs.mean),
  stickyPeakToAverageLoad: r3(sticky.peakToAverage.requests),
  meets: { jctSpeedup3x: rr.jctMs.mean / sticky.jctMs.mean >= 3, peakToAverage125: sticky.peakToAverage.requests <= 1.25 },
} : null;

log();
log('## Live (real router + simulator processes), model time');
log(liveTable);
log();
log('## Discrete-event simulation of the same trace (bench/routing/des.ts)');
log(desTable);
log();
log('## Ratios vs round-robin (mean JCT, mean TTFT, prefill tokens): live | simulation');
for (const p of POLICIES.filter((x) => x !== 'round-robin')) {
  const c = comparison;
  log(`- ${p}: JCT ${c.jctSpeedupVsRoundRobin.live[p]}× | ${c.jctSpeedupVsRoundRobin.simulation[p]}×; TTFT ${c.ttftSpeedupVsRoundRobin.live[p]}× | ${c.ttftSpeedupVsRoundRobin.simulation[p]}×; prefill ${c.prefillReductionVsRoundRobin.live[p]}× | ${c.prefillReductionVsRoundRobin.simulation[p]}×`);
}
if (verdict) log(`targets (live): sticky JCT ${verdict.jctSpeedupVsRoundRobin}× lower than round-robin (target ≥ 3×: ${verdict.meets.jctSpeedup3x ? 'met' : 'NOT met'}); sticky peak/avg load ${verdict.stickyPeakToAverageLoad} (target ≤ 1.25: ${verdict.meets.peakToAverage125 ? 'met' : 'NOT met'})`);

const outDir = values['out-dir'] ? resolve(values['out-dir']) : join(ROOT, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const setup = {
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', node: process.version },
  processes: `per policy: a fresh nats-server (JetStream, the router's pins), ${REPLICAS} replica-simulator processes (dist/apps/inference-router/src/simulator/main.js, default replica parameters, --time-scale ${SCALE}) and the inference-router process (dist/apps/inference-router/src/main.js, AGENTMESH_ROUTER_POLICY=<policy>); this client replays the trace with streamed requests`,
  timeScale: SCALE,
  router: { ...ROUTER, pinTtlRealMs: Math.round(ROUTER.ttlMs * SCALE) },
  replica: DEFAULT_REPLICA_PARAMS,
  trace: traceParams,
  meanPromptTokens: Math.round(mean(prompts)),
};
writeFileSync(join(outDir, 'routing-live.json'), `${JSON.stringify({ generatedBy: 'scripts/bench-routing-live.mjs', at: saved?.at ?? new Date().toISOString(), setup: saved ? { ...setup, machine: saved.setup.machine } : setup, live, simulation: des.map(({ perReplica, ...r }) => r), comparison, verdict }, null, 2)}\n`);
const md = [
  '# Live routing benchmark: the real inference-router against simulated replicas',
  '',
  `Generated by \`node scripts/bench-routing-live.mjs\` (\`npm run bench:routing:live\`) on ${(saved?.setup.machine ?? setup.machine).cpus} CPUs (${(saved?.setup.machine ?? setup.machine).cpuModel}), Node ${(saved?.setup.machine ?? setup.machine).node}, ${(saved?.at ?? new Date().toISOString()).slice(0, 10)}.`,
  '',
  `For each policy a fresh nats-server, ${REPLICAS} replica-simulator processes (cold KV caches) and the inference-router process (\`AGENTMESH_ROUTER_POLICY\`) are started; this client replays the routing benchmark's trace (bench/routing/trace.ts, seed ${traceParams.seed}: ${traceParams.sessions} sessions × ${traceParams.turnsPerSession} turns at ${traceParams.arrivalsPerSec} sessions/s, mean prompt ${setup.meanPromptTokens} tokens, context growing every turn, tool gaps between turns) as streamed \`POST /v1/chat/completions\` calls with the session as the affinity key. Replica model as in the simulation (prefill ${DEFAULT_REPLICA_PARAMS.prefillMsPerToken} ms/uncached token, decode ${DEFAULT_REPLICA_PARAMS.decodeMsPerStep} ms/step, batch ≤ ${DEFAULT_REPLICA_PARAMS.maxConcurrency}, KV cache ${DEFAULT_REPLICA_PARAMS.kvCacheTokens.toLocaleString('en-US')} tokens); router: capacity ${ROUTER.defaultCapacity} sessions/replica, load factor ${ROUTER.loadFactor}, pin TTL ${ROUTER.ttlMs / 1000} s (model time).`,
  '',
  `Time scale ${SCALE}: the simulators run model time ${r3(1 / SCALE)}× faster and the trace's arrivals, tool gaps and the pin TTL are scaled alike; all times below are model time (measured real time ÷ ${SCALE}). The router's, the client's and HTTP's own costs are not scaled, so they weigh ${r3(1 / SCALE)}× more than they would at real speed. Hit rate and prefill tokens come from the simulators' /stats; peak/avg load is max/mean over replicas of requests served (and busy time).`,
  '',
  '## Live',
  '',
  liveTable,
  '',
  '## The discrete-event simulation of the same trace',
  '',
  desTable,
  '',
  '## Ratios against round-robin (live | simulation)',
  '',
  '| policy | mean JCT | mean TTFT | prefill tokens |',
  '|---|---:|---:|---:|',
  ...POLICIES.filter((x) => x !== 'round-robin').map((p) => `| ${p} | ${comparison.jctSpeedupVsRoundRobin.live[p]}× \\| ${comparison.jctSpeedupVsRoundRobin.simulation[p]}× | ${comparison.ttftSpeedupVsRoundRobin.live[p]}× \\| ${comparison.ttftSpeedupVsRoundRobin.simulation[p]}× | ${comparison.prefillReductionVsRoundRobin.live[p]}× \\| ${comparison.prefillReductionVsRoundRobin.simulation[p]}× |`),
  '',
  ...(verdict ? [`Targets (live): sticky mean JCT ${verdict.jctSpeedupVsRoundRobin}× lower than round-robin (target ≥ 3×: ${verdict.meets.jctSpeedup3x ? 'met' : 'not met'}); sticky peak-to-average load ${verdict.stickyPeakToAverageLoad} (target ≤ 1.25: ${verdict.meets.peakToAverage125 ? 'met' : 'not met'}).`, ''] : []),
  '## Run conditions',
  '',
  'The machine is shared: other processes\' load (1-minute load average) and this client\'s event-loop lag show how much the real-time run was disturbed; a disturbance of 1 ms real counts as ' + `${r3(1 / SCALE)} ms of model time.`,
  '',
  '| policy | wall (s) | load average before → after | client event-loop lag mean / max (ms) | router placements by outcome | replicas per session (mean) | connection retries |',
  '|---|---:|---|---|---|---:|---:|',
  ...live.map((r) => `| ${r.policy} | ${(r.wallMs / 1000).toFixed(1)} | ${r.loadAverage1m.before} → ${r.loadAverage1m.after} | ${r.clientEventLoopLagMs.mean} / ${r.clientEventLoopLagMs.max} | ${Object.entries(r.routerAssignments).map(([k, v]) => `${k} ${v}`).join(', ')} | ${r.replicasPerSession.toFixed(2)} | ${r.connectionErrors} |`),
  '',
  'Per-replica requests, busy time, prefill tokens and hit rates are in routing-live.json.',
  '',
].join('\n');
writeFileSync(join(outDir, 'routing-live.md'), md);
log(`wrote ${join(outDir, 'routing-live.json')} and routing-live.md`);
agent.destroy();
process.exit(0);

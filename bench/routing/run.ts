/**
 * Routing benchmark: replays a seeded multi-turn agent trace against simulated GPU replicas under
 * four routing policies (discrete-event, on the replica simulator's KV-cache and timing model),
 * and times SessionRouter.route. Prints a summary and writes bench/results/routing.{json,md}.
 *
 *   node dist/bench/routing/run.js [--sessions 240] [--seed 42] [--rates 0.25,0.5,1] [--headline-rate 0.5]
 *                                  [--decisions 200000] [--out-dir bench/results]
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { POLICY_NAMES } from '#libs/routing';
import { DEFAULT_REPLICA_PARAMS } from '../../apps/inference-router/src/simulator/engine.js';
import { simulate, type ClusterEvent, type ClusterParams, type PolicyResult } from './des.js';
import { measureRouteLatency, type LatencyResult } from './latency.js';
import { latencyTable, policyTable } from './report.js';
import { DEFAULT_TRACE, generateTrace, type TraceParams } from './trace.js';

const TARGETS = { jctSpeedupVsRoundRobin: 3, peakToAverageLoad: 1.25, routeP99Us: 50 };

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
  return dir;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      sessions: { type: 'string', default: String(DEFAULT_TRACE.sessions) },
      seed: { type: 'string', default: String(DEFAULT_TRACE.seed) },
      rates: { type: 'string', default: '0.25,0.5,1' },
      'headline-rate': { type: 'string', default: String(DEFAULT_TRACE.arrivalsPerSec) },
      decisions: { type: 'string', default: '200000' },
      'out-dir': { type: 'string' },
    },
  });
  const rates = values.rates.split(',').map(Number);
  const headlineRate = Number(values['headline-rate']);
  if (!rates.includes(headlineRate)) rates.push(headlineRate);
  rates.sort((a, b) => a - b);

  const cluster: ClusterParams = {
    replicas: 4,
    replica: DEFAULT_REPLICA_PARAMS,
    router: { ttlMs: 30_000, loadFactor: 1.25, defaultCapacity: 48, vnodes: 160, seed: 0 },
    maxRetryWaitMs: 1000,
  };

  const log = (line = '') => process.stdout.write(`${line}\n`);
  log('# Routing benchmark');
  log(`replica model: prefill ${cluster.replica.prefillMsPerToken} ms/uncached token (+${cluster.replica.prefillOverheadMs} ms/step), decode ${cluster.replica.decodeMsPerStep} ms/step (+${cluster.replica.decodeMsPerSeq} ms per running seq), batch ≤ ${cluster.replica.maxConcurrency}, KV cache ${cluster.replica.kvCacheTokens} tokens in ${cluster.replica.blockSize}-token blocks; ${cluster.replicas} replicas`);
  log(`router: TTL ${cluster.router.ttlMs} ms, load factor ${cluster.router.loadFactor}, capacity ${cluster.router.defaultCapacity} sessions/replica, ${cluster.router.vnodes} vnodes`);

  const runs: { arrivalsPerSec: number; trace: TraceParams; meanPromptTokens: number; results: PolicyResult[] }[] = [];
  for (const rate of rates) {
    const params: TraceParams = { ...DEFAULT_TRACE, seed: Number(values.seed), sessions: Number(values.sessions), arrivalsPerSec: rate };
    const trace = generateTrace(params);
    const prompts = trace.sessions.flatMap((s) => s.turns.map((t) => t.promptTokens));
    const meanPromptTokens = prompts.reduce((a, b) => a + b, 0) / prompts.length;
    const results = POLICY_NAMES.map((p) => simulate(trace, p, cluster));
    runs.push({ arrivalsPerSec: rate, trace: params, meanPromptTokens, results });
    log();
    log(`## ${rate} sessions/s (${params.sessions} sessions × ${params.turnsPerSession} turns, mean prompt ${Math.round(meanPromptTokens)} tokens)${rate === headlineRate ? ' — headline' : ''}`);
    log(policyTable(results));
  }

  // Churn at the headline load: what plain consistent hashing and TTL-pinned bounded hashing do
  // when the replica set changes under live sessions.
  const scenarios: { name: string; description: string; replicas: number; events: ClusterEvent[] }[] = [
    {
      name: 'failover',
      description: 'replica-1 crashes at 200 s (its running and queued turns are retried elsewhere) and returns with a cold cache at 320 s',
      replicas: 4,
      events: [
        { atMs: 200_000, kind: 'crash', replica: 1 },
        { atMs: 320_000, kind: 'recover', replica: 1 },
      ],
    },
    {
      name: 'scale-out',
      description: 'starts with 3 replicas; replica-3 joins at 240 s (peak/avg over the 3 original replicas)',
      replicas: 3,
      events: [{ atMs: 240_000, kind: 'add', replica: 3 }],
    },
  ];
  const headlineTrace = generateTrace({ ...DEFAULT_TRACE, seed: Number(values.seed), sessions: Number(values.sessions), arrivalsPerSec: headlineRate });
  const churn = scenarios.map((sc) => ({
    ...sc,
    results: POLICY_NAMES.map((p) => simulate(headlineTrace, p, { ...cluster, replicas: sc.replicas, events: sc.events })),
  }));
  for (const c of churn) {
    log();
    log(`## Churn: ${c.name} at ${headlineRate} sessions/s — ${c.description}`);
    log(policyTable(c.results));
  }

  const latency: LatencyResult[] = [4, 64].map((replicas) =>
    measureRouteLatency({ replicas, decisions: Number(values.decisions), warmup: 20_000, activeSessions: 10_000, newSessionShare: 0.1, seed: 7 }),
  );
  log();
  log('## SessionRouter.route decision latency (process.hrtime.bigint per call)');
  log(latencyTable(latency));

  const headline = runs.find((r) => r.arrivalsPerSec === headlineRate)!;
  const rr = headline.results.find((r) => r.policy === 'round-robin')!;
  const sticky = headline.results.find((r) => r.policy === 'bounded-sticky')!;
  const speedup = rr.jctMs.mean / sticky.jctMs.mean;
  const inferenceSpeedup = rr.inferenceTimePerJobMs.mean / sticky.inferenceTimePerJobMs.mean;
  const p99Us = Math.max(...latency.map((l) => l.ns.p99)) / 1000;
  const verdict = {
    headlineArrivalsPerSec: headlineRate,
    jctSpeedupVsRoundRobin: speedup,
    inferenceTimeSpeedupVsRoundRobin: inferenceSpeedup,
    stickyPeakToAverageLoad: sticky.peakToAverage.requests,
    routeP99Us: p99Us,
    meets: {
      jctSpeedup: speedup >= TARGETS.jctSpeedupVsRoundRobin,
      peakToAverage: sticky.peakToAverage.requests <= TARGETS.peakToAverageLoad,
      routeP99: p99Us < TARGETS.routeP99Us,
    },
  };
  log();
  log('## Targets (headline load)');
  const lines = [
    `- sticky mean JCT ${(sticky.jctMs.mean / 1000).toFixed(1)} s vs round-robin ${(rr.jctMs.mean / 1000).toFixed(1)} s: ${speedup.toFixed(2)}× lower (target ≥ ${TARGETS.jctSpeedupVsRoundRobin}×: ${verdict.meets.jctSpeedup ? 'met' : 'NOT met'}); inference time per job ${inferenceSpeedup.toFixed(2)}× lower`,
    `- sticky peak-to-average load (requests per replica) ${sticky.peakToAverage.requests.toFixed(3)} (target ≤ ${TARGETS.peakToAverageLoad}: ${verdict.meets.peakToAverage ? 'met' : 'NOT met'}); busy time ${sticky.peakToAverage.busyTime.toFixed(3)}`,
    `- routing decision p99 ${p99Us.toFixed(2)} µs (target < ${TARGETS.routeP99Us} µs: ${verdict.meets.routeP99 ? 'met' : 'NOT met'})`,
  ];
  for (const l of lines) log(l);

  const outDir = values['out-dir'] ? resolve(values['out-dir']) : join(repoRoot(), 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const json = { generatedBy: 'bench/routing/run.ts', node: process.version, targets: TARGETS, verdict, cluster, runs, churn, routeLatency: latency };
  writeFileSync(join(outDir, 'routing.json'), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(outDir, 'routing.md'), markdown(cluster, runs, churn, latency, headlineRate, lines));
  log();
  log(`wrote ${join(outDir, 'routing.json')} and routing.md`);
}

function markdown(
  cluster: ClusterParams,
  runs: { arrivalsPerSec: number; trace: TraceParams; meanPromptTokens: number; results: PolicyResult[] }[],
  churn: { name: string; description: string; results: PolicyResult[] }[],
  latency: LatencyResult[],
  headlineRate: number,
  verdictLines: string[],
): string {
  const t = runs[0].trace;
  const r = cluster.replica;
  const out: string[] = [
    '# Routing benchmark: sticky bounded-load sessions vs round-robin',
    '',
    'Generated by `node dist/bench/routing/run.js` (bench/routing/). A discrete-event simulation replays a seeded',
    'multi-turn agent trace against simulated GPU replicas built on the replica simulator\'s KV-cache and',
    'scheduler model (apps/inference-router/src/simulator/engine.ts); it is deterministic for a given seed.',
    '',
    '## Parameters',
    '',
    `- Cluster: ${cluster.replicas} replicas. Each: prefill ${r.prefillMsPerToken} ms per uncached prompt token (+${r.prefillOverheadMs} ms per prefill step; ~${Math.round(1000 / r.prefillMsPerToken)} tokens/s, a 70B-class model on one tensor-parallel node), decode ${r.decodeMsPerStep} ms per step + ${r.decodeMsPerSeq} ms per running sequence, running batch ≤ ${r.maxConcurrency} (FIFO queue beyond), KV cache ${r.kvCacheTokens.toLocaleString('en-US')} tokens in ${r.blockSize}-token blocks with LRU prefix caching. Scheduler: prefill-first, one request per prefill step, decodes stall during a prefill (vLLM v0 style); output is reserved in the KV cache up front; generated tokens are not cached (the next turn re-prefills the previous reply).`,
    `- Router (all policies share it where it applies): TTL ${cluster.router.ttlMs / 1000} s, load factor c = ${cluster.router.loadFactor}, capacity ${cluster.router.defaultCapacity} pinned sessions per replica, ${cluster.router.vnodes} virtual nodes, xxHash32. A refused turn retries after min(retryAfterMs, ${cluster.maxRetryWaitMs} ms); its wait counts in its latency. Least-loaded counts requests in flight.`,
    `- Trace (seed ${t.seed}): ${t.sessions} sessions × ${t.turnsPerSession} turns, Poisson arrivals; ${t.agentTypes} agent types whose system prompt + tool schemas (${t.systemTokens.min}–${t.systemTokens.max} tokens) are shared by their sessions; task ${t.taskTokens.median} tokens (median, log-normal σ ${t.taskTokens.sigma}); per turn the model writes ${t.outputTokens.median} tokens (median, σ ${t.outputTokens.sigma}) and the tool result adds ${t.toolResultTokens.median} tokens (median, σ ${t.toolResultTokens.sigma}, ≤ ${t.toolResultTokens.max}); tool gap ${t.toolGapMs.median / 1000} s (median, σ ${t.toolGapMs.sigma}, ${t.toolGapMs.min / 1000}–${t.toolGapMs.max / 1000} s). Context grows every turn.`,
    '- Definitions: hit rate = cached prompt tokens / prompt tokens; TTFT = turn arrival → first token; JCT = agent job: first turn arrival → last turn\'s last token, tool gaps included; inference time / job = JCT minus the trace\'s tool gaps; peak/avg load = max over replicas / mean of requests served (and of GPU busy time).',
    '',
  ];
  for (const run of runs) {
    out.push(`## ${run.arrivalsPerSec} sessions/s${run.arrivalsPerSec === headlineRate ? ' (headline)' : ''}`, '', `Mean prompt ${Math.round(run.meanPromptTokens).toLocaleString('en-US')} tokens.`, '', policyTable(run.results), '');
  }
  for (const c of churn) {
    out.push(`## Churn: ${c.name} (${headlineRate} sessions/s)`, '', `${c.description[0].toUpperCase()}${c.description.slice(1)}.`, '', policyTable(c.results), '');
  }
  out.push('## Routing decision latency', '', `SessionRouter.route timed per call with process.hrtime.bigint() (timer overhead included), 10k live sessions, 10% of decisions place a new session.`, '', latencyTable(latency), '');
  out.push(`## Against the targets (${headlineRate} sessions/s)`, '', ...verdictLines, '');
  return out.join('\n');
}

main();

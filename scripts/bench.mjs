#!/usr/bin/env node
// `npm run bench`: the platform's own cost per step. Starts the embedded mesh (nats-server + six
// services) on free ports, runs 10-step graph runs of the no-op builtin tool, and measures
// (a) one run at a time: per-step latency p50/p99, (b) 50 runs at a time: steps per second.
// Steps are timed where the journal sees them: a JetStream consumer on run.> records when each
// tool.completed arrives; a step's latency is the gap since the run's previous step finished.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, DeliverPolicy } from '@nats-io/jetstream';
import { ROOT, startMesh, client } from './mesh.mjs';

const STEPS = 10;
const SERIAL_RUNS = Number(process.env.BENCH_SERIAL_RUNS ?? 200);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const CONCURRENT_RUNS = Number(process.env.BENCH_CONCURRENT_RUNS ?? 1500);
const WARMUP_RUNS = 30;

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch { return NaN; }
}
const PROCS = ['nats-server', 'gateway', 'orchestrator', 'tool-runner'];

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const ms = (ns) => Number(ns) / 1e6;

const dataDir = mkdtempSync(join(tmpdir(), 'agentmesh-bench-'));
const mesh = await startMesh({ dataDir, freePorts: true, quiet: true, env: { LOG_LEVEL: 'warn' } });
try {
  const admin = client(mesh.gatewayUrl, mesh.adminKey);
  await admin('POST', '/v1/tenants', { id: 'bench' });
  const key = (await admin('POST', '/v1/tenants/bench/api-keys', { roles: ['owner'] })).body.key;
  const api = client(mesh.gatewayUrl, key);
  await api('PUT', '/v1/tenants/bench/tools/noop', { version: '1', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'builtin', name: 'noop' } });
  const steps = Array.from({ length: STEPS }, (_, i) => ({ id: `s${i + 1}`, tool: 'noop', args: { i } }));
  const put = await api('PUT', '/v1/tenants/bench/agents/ten', { version: '1', planner: 'graph', tools: ['noop'], steps });
  if (put.status !== 201) throw new Error(`agent: ${put.status} ${JSON.stringify(put.body)}`);

  // journal watcher: one record per run, created by the first event seen (which may arrive
  // before the REST response that names the run)
  const nc = await connect({ servers: mesh.natsUrl });
  const js = jetstream(nc);
  // headers only: the watcher needs the event type (am-type) and the subject, not the payload
  const consumer = await js.consumers.get('AGENTMESH_JOURNAL', { filter_subjects: 'run.bench.>', deliver_policy: DeliverPolicy.New, headers_only: true });
  const msgs = await consumer.consume({ max_messages: 1024 });
  const records = new Map(); // runId -> { last?: bigint, stepsNs: bigint[], terminal?: string }
  const waiters = new Map(); // runId -> resolve
  const recordOf = (id) => { let r = records.get(id); if (!r) { r = { stepsNs: [] }; records.set(id, r); } return r; };
  void (async () => {
    for await (const m of msgs) {
      const t = process.hrtime.bigint();
      const type = m.headers?.get('am-type');
      const runId = m.subject.split('.')[2];
      const r = recordOf(runId);
      if (type === 'run.started') r.last = t;
      else if (type === 'tool.completed') { if (r.last !== undefined) r.stepsNs.push(t - r.last); r.last = t; }
      else if (type === 'run.completed' || type === 'run.failed' || type === 'run.cancelled') { r.terminal = type; waiters.get(runId)?.(); }
    }
  })();

  const startRunExact = async () => {
    const res = await api('POST', '/v1/tenants/bench/runs', { agent: 'ten', input: {} });
    if (res.status !== 201) throw new Error(`start: ${res.status} ${JSON.stringify(res.body)}`);
    const id = res.body.id;
    const r = recordOf(id);
    if (!r.terminal) await new Promise((resolve) => waiters.set(id, resolve));
    waiters.delete(id);
    records.delete(id);
    return { stepsNs: r.stepsNs, failed: r.terminal !== 'run.completed' };
  };

  for (let i = 0; i < WARMUP_RUNS; i++) await startRunExact();

  // (a) serial
  const serialSteps = [];
  const serialT0 = process.hrtime.bigint();
  for (let i = 0; i < SERIAL_RUNS; i++) {
    const r = await startRunExact();
    if (r.failed) throw new Error('a run failed');
    serialSteps.push(...r.stepsNs.map(ms));
  }
  const serialWall = ms(process.hrtime.bigint() - serialT0);

  // (b) concurrency
  let started = 0;
  let stepsDone = 0;
  let failed = 0;
  const cpu0 = Object.fromEntries(PROCS.map((p) => [p, cpuSeconds(mesh.pid(p))]));
  const benchCpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    while (started < CONCURRENT_RUNS) {
      started++;
      const r = await startRunExact();
      stepsDone += STEPS;
      if (r.failed) failed++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsedS = ms(process.hrtime.bigint() - t0) / 1000;
  const cpuMsPerStep = Object.fromEntries(PROCS.map((p) => [p, +(((cpuSeconds(mesh.pid(p)) - cpu0[p]) * 1000) / stepsDone).toFixed(3)]));
  const bc = process.cpuUsage(benchCpu0);
  cpuMsPerStep['load generator'] = +(((bc.user + bc.system) / 1000) / stepsDone).toFixed(3);
  msgs.stop();
  await nc.close();

  const results = {
    at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    setup: 'embedded mesh: nats-server 2.9 (JetStream, file store) + 6 services as processes; 10-step graph runs of the builtin noop tool; runs started over REST',
    serial: { runs: SERIAL_RUNS, steps: serialSteps.length, stepP50Ms: +pct(serialSteps, 50).toFixed(3), stepP99Ms: +pct(serialSteps, 99).toFixed(3), stepMeanMs: +(serialSteps.reduce((a, b) => a + b, 0) / serialSteps.length).toFixed(3), wallMs: Math.round(serialWall) },
    concurrent: { concurrency: CONCURRENCY, runs: CONCURRENT_RUNS, failedRuns: failed, steps: stepsDone, seconds: +elapsedS.toFixed(2), stepsPerSecond: Math.round(stepsDone / elapsedS), cpuMsPerStep },
    loadAverageAtStart: loadavg()[0],
    targets: { stepP50Ms: 1.5, stepsPerSecond: 2500 },
  };
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/mesh.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`per-step latency, one run at a time (${results.serial.steps} steps): p50 ${results.serial.stepP50Ms} ms, p99 ${results.serial.stepP99Ms} ms (target p50 <= 1.5 ms)`);
  console.log(`throughput, ${CONCURRENCY} runs at a time (${CONCURRENT_RUNS} runs): ${results.concurrent.stepsPerSecond} steps/s (target >= 2500), failed runs ${failed}`);
  console.log(`CPU ms per step: ${Object.entries(cpuMsPerStep).map(([k, v]) => `${k} ${v}`).join(', ')} (2 cores: 2500 steps/s needs <= 0.8 ms in all)`);
  console.log(`load average at start ${results.loadAverageAtStart.toFixed(2)} (other work on the machine skews the figures)`);
  console.log('written to bench/results/mesh.json');
} finally {
  await mesh.stop();
  rmSync(dataDir, { recursive: true, force: true });
}

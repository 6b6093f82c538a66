import type { PolicyResult } from './des.js';
import type { LatencyResult } from './latency.js';

const s = (ms: number) => (ms / 1000).toFixed(2);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const us = (ns: number) => (ns / 1000).toFixed(2);

export function policyTable(results: readonly PolicyResult[]): string {
  const header = '| policy | prefix-cache hit rate | prefill tokens computed | TTFT mean (s) | TTFT p99 (s) | turn latency mean (s) | JCT mean (s) | JCT p99 (s) | inference time / job (s) | peak/avg load (requests) | peak/avg busy time | refusals / crash retries |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const rows = results.map(
    (r) =>
      `| ${r.policy} | ${pct(r.prefixCacheHitRate)} | ${r.prefillTokens.toLocaleString('en-US')} | ${s(r.ttftMs.mean)} | ${s(r.ttftMs.p99)} | ${s(r.turnLatencyMs.mean)} | ${s(r.jctMs.mean)} | ${s(r.jctMs.p99)} | ${s(r.inferenceTimePerJobMs.mean)} | ${r.peakToAverage.requests.toFixed(3)} | ${r.peakToAverage.busyTime.toFixed(3)} | ${r.refusals} / ${r.retriedAfterCrash} |`,
  );
  return [header, rule, ...rows].join('\n');
}

export function latencyTable(results: readonly LatencyResult[]): string {
  const header = '| replicas | live sessions | decisions | p50 (µs) | p99 (µs) | p99.9 (µs) | max (µs) | p99 of hits (µs) | p99 of new placements (µs) |';
  const rule = '|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const rows = results.map(
    (r) =>
      `| ${r.replicas} | ${r.activeSessions} | ${r.decisions} | ${us(r.ns.p50)} | ${us(r.ns.p99)} | ${us(r.ns.p999)} | ${us(r.ns.max)} | ${us(r.byOutcome.hit?.p99 ?? Number.NaN)} | ${us(r.byOutcome.new?.p99 ?? Number.NaN)} |`,
  );
  return [header, rule, ...rows].join('\n');
}

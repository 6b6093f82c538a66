import { createPolicy, type PolicyName } from '#libs/routing';
import { ReplicaEngine, type EngineStats, type ReplicaParams } from '../../apps/inference-router/src/simulator/engine.js';
import { EventQueue, mean, peakToAverage, percentile } from './stats.js';
import { turnBlockKeys, type Trace } from './trace.js';

/** Something that happens to the cluster during a run. */
export type ClusterEvent =
  /** The replica crashes: its running and queued requests fail and are retried elsewhere; the router marks it down. */
  | { readonly atMs: number; readonly kind: 'crash'; readonly replica: number }
  /** The crashed replica is back, with an empty KV cache. */
  | { readonly atMs: number; readonly kind: 'recover'; readonly replica: number }
  /** A new replica joins (scale-out). */
  | { readonly atMs: number; readonly kind: 'add'; readonly replica: number };

export interface ClusterParams {
  /** Replicas present at the start (ids replica-0 …). */
  readonly replicas: number;
  readonly replica: ReplicaParams;
  /** Router options for the policies. */
  readonly router: { readonly ttlMs: number; readonly loadFactor: number; readonly defaultCapacity: number; readonly vnodes: number; readonly seed: number };
  /** Longest a refused turn waits before the agent retries (it honours retryAfterMs up to this). */
  readonly maxRetryWaitMs: number;
  readonly events?: readonly ClusterEvent[];
}

export interface PolicyResult {
  readonly policy: PolicyName;
  readonly requests: number;
  readonly sessions: number;
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly prefillTokens: number;
  readonly prefixCacheHitRate: number;
  readonly ttftMs: { readonly mean: number; readonly p50: number; readonly p99: number };
  readonly turnLatencyMs: { readonly mean: number; readonly p99: number };
  /** Agent job: first turn's arrival to last turn's final token, tool gaps included. */
  readonly jctMs: { readonly mean: number; readonly p50: number; readonly p99: number };
  /** JCT minus the trace's tool gaps: time the job spent waiting on inference. */
  readonly inferenceTimePerJobMs: { readonly mean: number };
  /** max / mean over replicas present for the whole run. */
  readonly peakToAverage: { readonly requests: number; readonly busyTime: number; readonly prefillTokens: number };
  readonly perReplica: readonly { readonly id: string; readonly requests: number; readonly busyMs: number; readonly prefillTokens: number; readonly hitRate: number }[];
  readonly refusals: number;
  /** Requests lost to a crash and retried. */
  readonly retriedAfterCrash: number;
  readonly makespanMs: number;
  readonly simulatedEvents: number;
  readonly wallMs: number;
}

interface Arrival {
  readonly session: number;
  readonly turn: number;
  /** When the turn first arrived (a refused or crashed turn keeps it, so waiting counts). */
  readonly firstArrivalMs: number;
}

interface Slot {
  readonly id: string;
  engine: ReplicaEngine;
  /** Stats of engines replaced after a crash. */
  readonly retired: EngineStats[];
  requests: number;
  present: boolean;
  fromStart: boolean;
}

/**
 * Replays the trace against ReplicaEngines behind one routing policy. Discrete-event: the clock
 * jumps from event to event (turn arrivals, engine step ends, cluster events), so a run takes
 * well under a second of wall time and is fully deterministic.
 */
export function simulate(trace: Trace, policyName: PolicyName, cluster: ClusterParams): PolicyResult {
  const wallStart = process.hrtime.bigint();
  const sessions = trace.sessions;
  const clusterEvents = [...(cluster.events ?? [])].sort((a, b) => a.atMs - b.atMs);
  const maxReplica = Math.max(cluster.replicas - 1, ...clusterEvents.map((e) => e.replica));
  const policy = createPolicy(policyName, { ...cluster.router, replicas: Array.from({ length: cluster.replicas }, (_, i) => `replica-${i}`) });
  const queue = new EventQueue<Arrival>();
  const ttft: number[] = [];
  const turnLatency: number[] = [];
  const jct: number[] = [];
  const inferenceTime: number[] = [];
  const inflight = new Map<string, Arrival & { replica: number }>();
  let refusals = 0;
  let retried = 0;
  let events = 0;
  let makespan = 0;

  const newEngine = (r: number): ReplicaEngine =>
    new ReplicaEngine(cluster.replica, {
      onPrefilled: (reqId, at) => {
        ttft.push(at - inflight.get(reqId)!.firstArrivalMs);
      },
      onDone: (reqId, at) => {
        const a = inflight.get(reqId)!;
        inflight.delete(reqId);
        turnLatency.push(at - a.firstArrivalMs);
        const s = sessions[a.session];
        policy.complete(s.id, slots[r].id, at);
        const turn = s.turns[a.turn];
        if (a.turn + 1 < s.turns.length) {
          queue.push(at + turn.toolGapMs, { session: a.session, turn: a.turn + 1, firstArrivalMs: at + turn.toolGapMs });
        } else {
          policy.endSession(s.id, at);
          const job = at - s.arrivalMs;
          jct.push(job);
          inferenceTime.push(job - s.turns.reduce((g, t) => g + t.toolGapMs, 0));
          makespan = Math.max(makespan, at);
        }
      },
    });
  const slots: Slot[] = Array.from({ length: maxReplica + 1 }, (_, r) => ({
    id: `replica-${r}`,
    engine: newEngine(r),
    retired: [],
    requests: 0,
    present: r < cluster.replicas,
    fromStart: r < cluster.replicas,
  }));

  const applyClusterEvent = (e: ClusterEvent, t: number): void => {
    const slot = slots[e.replica];
    if (e.kind === 'add') {
      slot.present = true;
      policy.addReplica(slot.id);
    } else if (e.kind === 'crash') {
      policy.setReplicaUp(slot.id, false);
      for (const [reqId, a] of [...inflight]) {
        if (a.replica !== e.replica) continue;
        slot.engine.cancel(reqId);
        inflight.delete(reqId);
        policy.complete(sessions[a.session].id, slot.id, t);
        retried++;
        queue.push(t, { session: a.session, turn: a.turn, firstArrivalMs: a.firstArrivalMs });
      }
      slot.retired.push(slot.engine.stats());
      slot.engine = newEngine(e.replica);
    } else {
      policy.setReplicaUp(slot.id, true);
    }
  };

  for (const s of sessions) queue.push(s.arrivalMs, { session: s.index, turn: 0, firstArrivalMs: s.arrivalMs });
  let nextClusterEvent = 0;

  for (;;) {
    let engineNext = Number.POSITIVE_INFINITY;
    for (const slot of slots) {
      const t = slot.engine.nextEventAt();
      if (t !== undefined && t < engineNext) engineNext = t;
    }
    const clusterNext = clusterEvents[nextClusterEvent]?.atMs ?? Number.POSITIVE_INFINITY;
    const arrivalNext = queue.peekTime() ?? Number.POSITIVE_INFINITY;
    if (engineNext === Number.POSITIVE_INFINITY && arrivalNext === Number.POSITIVE_INFINITY) break;
    events++;
    if (engineNext <= clusterNext && engineNext <= arrivalNext) {
      for (const slot of slots) slot.engine.advanceTo(engineNext);
      continue;
    }
    if (clusterNext <= arrivalNext) {
      applyClusterEvent(clusterEvents[nextClusterEvent++], clusterNext);
      continue;
    }
    const { t, v: a } = queue.pop()!;
    const s = sessions[a.session];
    const decision = policy.route(s.id, t);
    if (!decision.ok) {
      refusals++;
      queue.push(t + Math.min(cluster.maxRetryWaitMs, decision.retryAfterMs), a);
      continue;
    }
    const r = slots.findIndex((x) => x.id === decision.replica);
    const turn = s.turns[a.turn];
    const reqId = `${a.session}:${a.turn}`;
    inflight.set(reqId, { ...a, replica: r });
    slots[r].requests++;
    slots[r].engine.submit(
      { id: reqId, blockKeys: turnBlockKeys(s, turn.promptTokens, cluster.replica.blockSize), promptTokens: turn.promptTokens, outputTokens: turn.outputTokens },
      t,
    );
  }

  const perReplica = slots.map((slot) => {
    const all = [...slot.retired, slot.engine.stats()];
    const sum = (f: (s: EngineStats) => number) => all.reduce((x, s) => x + f(s), 0);
    const promptTokens = sum((s) => s.promptTokens);
    return {
      id: slot.id,
      fromStart: slot.fromStart,
      requests: slot.requests,
      busyMs: sum((s) => s.busyMs),
      promptTokens,
      cachedTokens: sum((s) => s.cachedTokens),
      prefillTokens: sum((s) => s.prefillTokens),
      hitRate: promptTokens === 0 ? 0 : sum((s) => s.cachedTokens) / promptTokens,
    };
  });
  const total = (f: (r: (typeof perReplica)[number]) => number) => perReplica.reduce((x, r) => x + f(r), 0);
  const whole = perReplica.filter((r) => r.fromStart);
  return {
    policy: policyName,
    requests: turnLatency.length,
    sessions: jct.length,
    promptTokens: total((r) => r.promptTokens),
    cachedTokens: total((r) => r.cachedTokens),
    prefillTokens: total((r) => r.prefillTokens),
    prefixCacheHitRate: total((r) => r.cachedTokens) / total((r) => r.promptTokens),
    ttftMs: { mean: mean(ttft), p50: percentile(ttft, 50), p99: percentile(ttft, 99) },
    turnLatencyMs: { mean: mean(turnLatency), p99: percentile(turnLatency, 99) },
    jctMs: { mean: mean(jct), p50: percentile(jct, 50), p99: percentile(jct, 99) },
    inferenceTimePerJobMs: { mean: mean(inferenceTime) },
    peakToAverage: {
      requests: peakToAverage(whole.map((r) => r.requests)),
      busyTime: peakToAverage(whole.map((r) => r.busyMs)),
      prefillTokens: peakToAverage(whole.map((r) => r.prefillTokens)),
    },
    perReplica: perReplica.map(({ id, requests, busyMs, prefillTokens, hitRate }) => ({ id, requests, busyMs, prefillTokens, hitRate })),
    refusals,
    retriedAfterCrash: retried,
    makespanMs: makespan,
    simulatedEvents: events,
    wallMs: Number(process.hrtime.bigint() - wallStart) / 1e6,
  };
}

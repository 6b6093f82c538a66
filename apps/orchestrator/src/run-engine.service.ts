import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { KvEntry, KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentmeshError, BREAKER_KEYS, BUCKETS, runKeyString, type CommandMap, type ReserveResult, type RunKey } from '#libs/contracts';
import { toolPrice, type AppConfig } from '#libs/config';
import {
  budgetExceededEvent, budgetReservedEvent, budgetSettledEvent,
  cancelEvent, createdEvent, decide, failEvent, initialState, isTerminal, reduce, toolOutcomeEvent, toolsResolvedEvent,
  type RunState,
} from '#libs/engine';
import { Journal, StaleWriterError } from '#libs/journal';
import { CommandBus, CONFIG, LOGGER, NATS, openBucket, RetryLaterError, RpcClient, type JsContext } from '#libs/messaging';
import { annotateTrace, metrics, type Logger } from '#libs/telemetry';
import type { AnyNewJournalEvent } from '#libs/contracts';
import { RunIndexWriter } from './run-index.js';

const MAX_CACHED_RUNS = 20_000;

/**
 * Drives runs: folds each command into the run's journal, asks the engine what comes next,
 * appends its events (fenced on the run's last sequence) and performs its effects. Work on one run
 * is serialised in this process; across processes the journal's fencing keeps one writer.
 */
@Injectable()
export class RunEngine implements OnModuleInit, OnModuleDestroy {
  private journal!: Journal;
  private bus!: CommandBus;
  private rpc!: RpcClient;
  private budget!: BudgetGate;
  /** Recent run states held by this worker; a miss loads snapshot + tail from the journal. */
  private readonly cache = new Map<string, RunState>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly dispatchedAt = new Map<string, bigint>();

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly index: RunIndexWriter,
  ) {}

  async onModuleInit(): Promise<void> {
    this.journal = await Journal.open(this.nc);
    this.bus = new CommandBus(this.nc);
    this.rpc = new RpcClient(this.nc);
    this.budget = await BudgetGate.open(this.nc, this.config, this.logger);
  }

  onModuleDestroy(): void {
    this.budget?.close();
  }

  start(cmd: CommandMap['run.start'], ctx: JsContext): Promise<void> {
    return this.withRun(cmd, async () => {
      const { state, recovered } = await this.state(cmd);
      let s = state;
      if (s.eventCount === 0) s = await this.append(s, createdEvent(s, now(), cmd));
      await this.drive(s, recovered || ctx.redelivered);
    });
  }

  toolResult(res: CommandMap['tool.result'], ctx: JsContext): Promise<void> {
    return this.withRun(res, async () => {
      const { state, recovered } = await this.state(res);
      let s = state;
      const ev = toolOutcomeEvent(s, now(), res);
      if (ev) {
        // a reserved call is settled before its outcome is recorded; settling again (redelivery) charges nothing more
        const reserved = s.inFlight?.reservedUsd;
        const charged = reserved === undefined ? undefined : await this.budget.settle(s, res.callKey, actualCost(res, reserved));
        s = await this.append(s, ev);
        this.observeStep(s, res.callKey);
        if (charged !== undefined) s = await this.append(s, budgetSettledEvent(s, now(), res.step, res.callKey, charged));
      }
      await this.drive(s, (recovered || ctx.redelivered) && !ev);
    });
  }

  cancel(cmd: CommandMap['run.cancel'], ctx: JsContext): Promise<void> {
    return this.withRun(cmd, async () => {
      const { state, recovered } = await this.state(cmd);
      if (state.eventCount === 0) {
        if (ctx.deliveryCount > 20) throw new AgentmeshError('not_found', `run ${cmd.runId} does not exist`);
        throw new RetryLaterError('run not started yet', 250);
      }
      const settled = await this.settlePending(state); // before a terminal event can close the journal
      const ev = cancelEvent(settled, now(), cmd.reason);
      const s = ev ? await this.append(settled, ev) : settled;
      await this.drive(s, recovered || ctx.redelivered);
    });
  }

  /** Loops decide → append → effects until the run waits on something outside. */
  private async drive(initial: RunState, recovering: boolean): Promise<void> {
    const statusBefore = initial.status;
    let s: RunState;
    try {
      s = await this.loop(await this.settlePending(initial), recovering);
    } catch (e) {
      // e.g. waiting for the cost-governor: a status change appended before still reaches the index
      const held = this.cache.get(runKeyString(initial));
      if (held && held.status !== statusBefore) await this.afterDrive(statusBefore, held).catch(() => undefined);
      throw e;
    }
    await this.afterDrive(statusBefore, s);
  }

  private async loop(initial: RunState, recovering: boolean): Promise<RunState> {
    let s = initial;
    let redispatch = recovering;
    for (let guard = 0; guard < 10_000; guard++) {
      const d = decide(s, { now: now(), globalMaxSteps: this.config.globalMaxSteps, redispatch, loop: this.config.loopDetection });
      redispatch = false;
      const dispatch = d.effects.length === 1 && d.effects[0].kind === 'dispatch_tool' ? d.effects[0] : null;
      const last = d.events[d.events.length - 1];
      if (dispatch && last?.type === 'tool.called') {
        // A new call. The tenant's circuit breaker (in memory, watched) stops it first; a free
        // call needs nothing else; a priced one holds its worst-case cost with the cost-governor.
        const stop = this.budget.breakerReason(s.tenantId);
        if (stop) {
          s = await this.append(s, budgetExceededEvent(s, now(), stop));
          break;
        }
        // step.started is durable (appended just now, fenced, or already in the journal), so the
        // call is on record: tool.called and the dispatch can go out together. A stale writer
        // can only re-send that same recorded call, which its call key dedupes.
        for (const e of d.events.slice(0, -1)) s = await this.append(s, e);
        const cmd = dispatch.command;
        const price = this.budget.priceOf(s.tenantId, cmd.tool.name);
        if (price > 0 && s.inFlight?.reservedUsd === undefined) {
          const r = await this.budget.reserve(s, cmd, price);
          if (!r.granted) {
            s = await this.append(s, budgetExceededEvent(s, now(), r.reason));
            break;
          }
          s = await this.append(s, budgetReservedEvent(s, now(), cmd.step, cmd.callKey, r.usd));
        }
        const [next] = await Promise.all([this.append(s, last), this.dispatch(cmd)]);
        s = next;
        break;
      }
      for (const e of d.events) s = await this.append(s, e);
      let waiting = d.effects.length === 0 && d.events.length === 0;
      for (const eff of d.effects) {
        if (eff.kind === 'dispatch_tool') {
          await this.dispatch(eff.command);
          waiting = true;
        } else {
          s = await this.resolveTools(s, eff.refs);
        }
      }
      if (waiting || isTerminal(s)) break;
    }
    return s;
  }

  /** Records the settlement of a finished reserved call that was not yet recorded (after a crash). */
  private async settlePending(s: RunState): Promise<RunState> {
    if (!s.unsettled || isTerminal(s)) return s;
    const { callKey, usd } = s.unsettled;
    const charged = await this.budget.settle(s, callKey, usd);
    return this.append(s, budgetSettledEvent(s, now(), s.step, callKey, charged));
  }

  private async dispatch(cmd: CommandMap['tool.execute']): Promise<void> {
    await this.bus.send('tool.execute', cmd, cmd.callKey);
    this.dispatchedAt.set(cmd.callKey, process.hrtime.bigint());
  }

  private async resolveTools(s: RunState, refs: string[]): Promise<RunState> {
    try {
      const { tools } = await this.rpc.call('tools.resolve', { tenantId: s.tenantId, refs });
      return this.append(s, toolsResolvedEvent(s, now(), tools));
    } catch (e) {
      if (e instanceof AgentmeshError && (e.code === 'invalid_argument' || e.code === 'not_found')) {
        return this.append(s, failEvent(s, now(), { code: 'invalid_input', message: e.message }));
      }
      throw new RetryLaterError('tool registry unavailable; the run waits', 500, { cause: e });
    }
  }

  private async afterDrive(before: RunState['status'], s: RunState): Promise<void> {
    if (s.status !== before || before === 'queued') {
      await this.index.write(s);
      if (s.status === 'running' && before === 'queued') {
        metrics.runsStarted.inc({ tenant: s.tenantId });
        metrics.runsActive.inc({ tenant: s.tenantId });
      }
      if (isTerminal(s)) {
        metrics.runsFinished.inc({ tenant: s.tenantId, status: s.status });
        if (before !== 'queued') metrics.runsActive.dec({ tenant: s.tenantId });
        this.cache.delete(runKeyString(s));
        this.logger.info({ runId: s.runId, status: s.status, steps: s.step, error: s.error?.code }, 'run finished');
      }
    }
  }

  /** Appends one event fenced on the state's last sequence and folds it in. */
  private async append(s: RunState, e: AnyNewJournalEvent): Promise<RunState> {
    const key = runKeyString(s);
    let seq: number;
    try {
      seq = await this.journal.append(e, s.lastSeq, s.eventCount + 1);
    } catch (err) {
      this.cache.delete(key);
      if (err instanceof StaleWriterError) throw new RetryLaterError('another writer advanced the run; reloading', 0, { cause: err });
      throw err;
    }
    if (seq <= s.lastSeq) {
      // our publish was a duplicate of an event already stored: our view was stale
      this.cache.delete(key);
      throw new RetryLaterError('journal already holds this position; reloading', 0);
    }
    const next = reduce(s, { ...e, seq } as Parameters<typeof reduce>[1]);
    this.cache.set(key, next);
    if (next.eventCount % this.config.snapshotEvery === 0 && !isTerminal(next)) {
      this.journal.saveSnapshot(next).catch((err) => this.logger.warn({ err, runId: next.runId }, 'snapshot failed'));
    }
    return next;
  }

  private async state(k: RunKey): Promise<{ state: RunState; recovered: boolean }> {
    const key = runKeyString(k);
    const hit = this.cache.get(key);
    if (hit) annotateTrace({ sessionId: hit.sessionId }); // observability: the run's session joins the trace context
    if (hit) return { state: hit, recovered: false };
    const state = await this.journal.load(k);
    if (this.cache.size >= MAX_CACHED_RUNS) this.cache.delete(this.cache.keys().next().value as string);
    if (state.eventCount > 0) this.cache.set(key, state);
    annotateTrace({ sessionId: state.sessionId }); // observability: the run's session joins the trace context
    return { state: state.eventCount > 0 ? state : initialState(k.tenantId, k.runId), recovered: state.eventCount > 0 };
  }

  private withRun<T>(k: RunKey, fn: () => Promise<T>): Promise<T> {
    const key = runKeyString(k);
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(key, tail);
    void tail.then(() => { if (this.locks.get(key) === tail) this.locks.delete(key); });
    return run;
  }

  private observeStep(s: RunState, callKey: string): void {
    metrics.steps.inc({ tenant: s.tenantId });
    const t0 = this.dispatchedAt.get(callKey);
    if (t0 !== undefined) {
      this.dispatchedAt.delete(callKey);
      metrics.stepDuration.observe({ tenant: s.tenantId }, Number(process.hrtime.bigint() - t0) / 1e9);
    }
  }
}

const now = (): string => new Date().toISOString();

/** Tool-runner failures that mean the tool was never invoked: such a call costs nothing. */
const NOT_INVOKED = new Set(['tool_not_found', 'tool_disabled', 'invalid_arguments', 'egress_denied', 'transport_unavailable']);

/** What a finished tool call costs: its per-call price, unless the tool was never invoked. */
function actualCost(res: CommandMap['tool.result'], reservedUsd: number): number {
  return !res.ok && NOT_INVOKED.has(res.error.code) ? 0 : reservedUsd;
}

interface BreakerFlag { open: boolean; reason?: string }

/**
 * The orchestrator's side of the cost-governor. The tenant circuit breaker is held in memory from
 * a JetStream KV watch (no round trip per call: a free call costs nothing and asks nobody), and
 * priced calls reserve and settle over NATS RPC. A governor that does not answer makes the run wait
 * (RetryLaterError: the message comes back) until it is back.
 */
export class BudgetGate {
  private readonly open = new Map<string, string>();
  private readonly revisions = new Map<string, number>();
  private watch?: AsyncIterable<KvWatchEntry> & { stop(): void };

  private constructor(private readonly rpc: RpcClient, private readonly config: AppConfig, private readonly logger: Logger) {}

  static async open(nc: NatsConnection, config: AppConfig, logger: Logger): Promise<BudgetGate> {
    const gate = new BudgetGate(new RpcClient(nc, 2000), config, logger);
    const kv = await openBucket(nc, BUCKETS.budgets);
    // the flags as they are now, before the first run is driven; then every change
    const keys: string[] = [];
    for await (const k of await kv.keys(BREAKER_KEYS)) keys.push(k);
    for (const e of await Promise.all(keys.map((k) => kv.get(k)))) if (e) gate.seen(e);
    const w = await kv.watch({ key: BREAKER_KEYS });
    gate.watch = w;
    void (async () => {
      for await (const e of w) gate.seen(e);
    })().catch((err) => logger.error({ err }, 'budget breaker watch ended'));
    return gate;
  }

  close(): void {
    this.watch?.stop();
  }

  private seen(e: KvEntry): void {
    const tenant = e.key.split('.')[0];
    if (e.revision <= (this.revisions.get(tenant) ?? 0)) return;
    this.revisions.set(tenant, e.revision);
    const flag = e.operation === 'PUT' && e.length > 0 ? e.json<BreakerFlag>() : null;
    if (flag?.open) this.open.set(tenant, flag.reason ?? 'the tenant budget is exhausted');
    else this.open.delete(tenant);
  }

  /** Why the tenant's calls are stopped (its circuit breaker is open), or null. */
  breakerReason(tenantId: string): string | null {
    const reason = this.open.get(tenantId);
    return reason === undefined ? null : `${reason}: the circuit breaker stopped the run`;
  }

  /** The worst-case cost of one call of the tool (0: free, no reservation). */
  priceOf(tenantId: string, tool: string): number {
    return toolPrice(this.config.prices, tenantId, tool);
  }

  async reserve(s: RunState, cmd: CommandMap['tool.execute'], usd: number): Promise<ReserveResult> {
    const limitUsd = s.agent?.limits.budgetUsd;
    return this.ask(() => this.rpc.call('budget.reserve', {
      tenantId: s.tenantId, callKey: cmd.callKey, runId: s.runId, agent: s.agent?.name ?? '', kind: 'tool', tool: cmd.tool.name, usd,
      run: { spentUsd: s.cost.usd, ...(limitUsd !== undefined ? { limitUsd } : {}) },
    }));
  }

  /** Charges the call (once per call key); resolves with what was charged. */
  async settle(s: RunState, callKey: string, usd: number): Promise<number> {
    const tool = s.inFlight?.tool ?? s.history[s.history.length - 1]?.tool;
    const call = { runId: s.runId, agent: s.agent?.name ?? '', kind: 'tool' as const, ...(tool ? { tool } : {}) };
    return (await this.ask(() => this.rpc.call('budget.settle', { tenantId: s.tenantId, callKey, usd, call }))).usd;
  }

  private async ask<R>(fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof AgentmeshError && (e.code === 'invalid_argument' || e.code === 'not_found' || e.code === 'permission_denied')) throw e;
      this.logger.warn({ err: e }, 'cost-governor unavailable; the run waits');
      throw new RetryLaterError('the cost-governor is unavailable; the run waits at its priced call', 1000, { cause: e });
    }
  }
}

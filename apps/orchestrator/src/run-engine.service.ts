import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentmeshError, runKeyString, type CommandMap, type RunKey } from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import {
  cancelEvent, createdEvent, decide, failEvent, initialState, isTerminal, reduce, toolOutcomeEvent, toolsResolvedEvent,
  type RunState,
} from '#libs/engine';
import { Journal, StaleWriterError } from '#libs/journal';
import { CommandBus, CONFIG, LOGGER, NATS, RetryLaterError, RpcClient, type JsContext } from '#libs/messaging';
import { metrics, type Logger } from '#libs/telemetry';
import type { AnyNewJournalEvent } from '#libs/contracts';
import { RunIndexWriter } from './run-index.js';

const MAX_CACHED_RUNS = 20_000;

/**
 * Drives runs: folds each command into the run's journal, asks the engine what comes next,
 * appends its events (fenced on the run's last sequence) and performs its effects. Work on one run
 * is serialised in this process; across processes the journal's fencing keeps one writer.
 */
@Injectable()
export class RunEngine implements OnModuleInit {
  private journal!: Journal;
  private bus!: CommandBus;
  private rpc!: RpcClient;
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
        s = await this.append(s, ev);
        this.observeStep(s, res.callKey);
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
      const ev = cancelEvent(state, now(), cmd.reason);
      const s = ev ? await this.append(state, ev) : state;
      await this.drive(s, recovered || ctx.redelivered);
    });
  }

  /** Loops decide → append → effects until the run waits on something outside. */
  private async drive(initial: RunState, recovering: boolean): Promise<void> {
    let s = initial;
    let redispatch = recovering;
    const statusBefore = initial.status;
    for (let guard = 0; guard < 10_000; guard++) {
      const d = decide(s, { now: now(), globalMaxSteps: this.config.globalMaxSteps, redispatch });
      redispatch = false;
      const dispatch = d.effects.length === 1 && d.effects[0].kind === 'dispatch_tool' ? d.effects[0] : null;
      const last = d.events[d.events.length - 1];
      if (dispatch && last?.type === 'tool.called') {
        // step.started is durable (appended just now, fenced, or already in the journal), so the
        // call is on record: tool.called and the dispatch can go out together. A stale writer
        // can only re-send that same recorded call, which its call key dedupes.
        for (const e of d.events.slice(0, -1)) s = await this.append(s, e);
        const [next] = await Promise.all([this.append(s, last), this.dispatch(dispatch.command)]);
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
    await this.afterDrive(statusBefore, s);
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
    if (hit) return { state: hit, recovered: false };
    const state = await this.journal.load(k);
    if (this.cache.size >= MAX_CACHED_RUNS) this.cache.delete(this.cache.keys().next().value as string);
    if (state.eventCount > 0) this.cache.set(key, state);
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

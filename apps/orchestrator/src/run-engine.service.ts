import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { KvEntry, KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AgentmeshError, BREAKER_KEYS, BUCKETS, MAX_DELEGATION_ATTEMPTS, runKeyString, SPENT_DELEGATION_CODES, toolExecuteMsgId,
  type CallKind, type CommandMap, type InferenceChatResponse, type JsonValue, type PinnedTool, type ReserveResult, type RunKey,
} from '#libs/contracts';
import { toolPrice, type AppConfig } from '#libs/config';
import {
  approvalDecisionEvent, approvalExpiredEvent, budgetExceededEvent, budgetReservedEvent, budgetSettledEvent,
  cancelEvent, createdEvent, decide, failEvent, initialState, isTerminal, llmCompletedEvent, llmDeltaEvent, plannerDecidedEvent,
  reduce, toolOutcomeEvent, toolsResolvedEvent, usesSession,
  type Decision, type Effect, type RunState,
} from '#libs/engine';
import { Journal, StaleWriterError } from '#libs/journal';
import { ActiveRuns } from '#libs/limits';
import { CommandBus, CONFIG, LOGGER, NATS, openBucket, RetryLaterError, RpcClient, type JsContext } from '#libs/messaging';
import { annotateTrace, metrics, type Logger } from '#libs/telemetry';
import type { AnyNewJournalEvent } from '#libs/contracts';
import { ApprovalProjection } from './approvals.js';
import { LlmCaller, LlmRefusedError } from './llm-caller.js';
import { PlannerClient } from './planner-client.js';
import { PlannerSessions } from './planner-sessions.js';
import { withDelegation } from './delegations.js';
import { RunIndexWriter } from './run-index.js';
import { ToolCatalog } from './tool-catalog.js';
import { ToolPolicy } from './tool-policy.js';

const MAX_CACHED_RUNS = 20_000;
/**
 * Longest nak delay of an approval timer: a timer due later is looked at again after this long
 * (cheap, and it bounds the effect of a clock that was wrong when it was nak'd).
 */
const MAX_TIMER_DELAY_MS = 3_600_000;

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
  private catalog!: ToolCatalog;
  private llm!: LlmCaller;
  private planners!: PlannerClient;
  /** Recent run states held by this worker; a miss loads snapshot + tail from the journal. */
  private readonly cache = new Map<string, RunState>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly dispatchedAt = new Map<string, bigint>();

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly index: RunIndexWriter,
    private readonly approvals: ApprovalProjection,
    private readonly sessions: PlannerSessions,
    private readonly active: ActiveRuns,
    private readonly toolPolicy: ToolPolicy,
  ) {}

  async onModuleInit(): Promise<void> {
    this.journal = await Journal.open(this.nc);
    this.bus = new CommandBus(this.nc);
    this.rpc = new RpcClient(this.nc);
    this.budget = await BudgetGate.open(this.nc, this.config, this.logger);
    this.catalog = new ToolCatalog(this.rpc);
    this.llm = new LlmCaller(this.nc, this.config, this.catalog);
    this.planners = new PlannerClient(this.nc, this.config.plannerTimeoutMs, this.logger);
  }

  onModuleDestroy(): void {
    this.budget?.close();
  }

  start(cmd: CommandMap['run.start'], ctx: JsContext): Promise<void> {
    return this.withRun(cmd, async () => {
      // A first delivery of a start is a new run: nothing to load. Should the run exist after all
      // (a start published again after the dedupe window), run.created's append is fenced at
      // sequence 0 and refused, and the redelivery loads what is there.
      const { state, recovered } = ctx.deliveryCount === 1 && !this.cache.has(runKeyString(cmd))
        ? { state: initialState(cmd.tenantId, cmd.runId), recovered: false }
        : await this.state(cmd);
      let s = state;
      if (s.eventCount === 0) s = await this.append(s, createdEvent(s, now(), cmd));
      await this.drive(s, recovered || ctx.redelivered, s, ctx);
    });
  }

  toolResult(res: CommandMap['tool.result'], ctx: JsContext): Promise<void> {
    return this.withRun(res, async () => {
      const { state, recovered } = await this.state(res);
      let s = state;
      if (await this.resendWithFreshDelegation(s, res)) return;
      const ev = toolOutcomeEvent(s, now(), res);
      if (ev) {
        // a reserved call is settled before its outcome is recorded; settling again (redelivery) charges nothing more
        const reserved = s.inFlight?.reservedUsd;
        const charged = reserved === undefined ? undefined : await this.budget.settle(s, res.callKey, actualCost(res, reserved));
        s = await this.append(s, ev);
        this.observeStep(s, res.callKey);
        if (charged !== undefined) s = await this.append(s, budgetSettledEvent(s, now(), res.step, res.callKey, charged));
      }
      await this.drive(s, (recovered || ctx.redelivered) && !ev, s, ctx);
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
      await this.drive(s, recovered || ctx.redelivered, state, ctx);
    });
  }

  /**
   * A human's decision (from the gateway). Folded in only while the approval is pending and not
   * due; the journal's fenced append settles a race with the timer: whichever is appended first
   * wins, the other finds nothing pending and changes nothing.
   */
  decideApproval(cmd: CommandMap['approval.decide'], ctx: JsContext): Promise<void> {
    return this.withRun(cmd, async () => {
      const { state } = await this.state(cmd, true);
      if (state.eventCount === 0) throw new AgentmeshError('not_found', `run ${cmd.runId} does not exist`);
      const ev = approvalDecisionEvent(state, now(), cmd);
      if (!ev) {
        // decided, expired or ended already: the read model says which (repaired here if a write was lost)
        await this.syncApprovals(null, state, true);
        // a redelivered decision: the worker that recorded it may have died before the run moved
        // on (step not started, dispatch not sent, failure not recorded): finish that work
        if (ctx.redelivered && !isTerminal(state)) await this.drive(state, true, state, ctx);
        return;
      }
      await this.drive(await this.append(state, ev), ctx.redelivered, state, ctx);
    });
  }

  /**
   * The durable timer of a pending approval. Before `expiresAt` it goes back to the broker with
   * the remaining delay (nak); once due and still pending, the approval expires and the run fails
   * `approval_expired`. Runs after a restart too: the timer is a JetStream message.
   */
  approvalTimeout(cmd: CommandMap['approval.timeout'], ctx: JsContext): Promise<void> {
    return this.withRun(cmd, async () => {
      // fresh from the journal: a cached state of this worker may predate the approval
      const { state } = await this.state(cmd, true);
      const a = state.approval;
      if (!a && !isTerminal(state) && ctx.deliveryCount < 10) {
        // armed only after approval.requested is durable: a read that does not show it yet is behind
        throw new RetryLaterError(`approval ${cmd.approvalId} is not in the journal yet`, 1000);
      }
      if (!a || a.approvalId !== cmd.approvalId) return; // an approval closed long ago (a later one is the run's now), or never recorded
      if (a.status !== 'pending' || isTerminal(state)) {
        await this.syncApprovals(null, state, true);
        // expired by a worker that died before recording the run's failure: record it now
        if (a.status === 'expired' && !isTerminal(state)) await this.drive(state, false, state, ctx);
        return;
      }
      const due = Date.parse(a.expiresAt) - Date.now();
      if (due > 0) throw new RetryLaterError(`approval ${a.approvalId} is due in ${due} ms`, Math.min(due + 10, MAX_TIMER_DELAY_MS));
      const ev = approvalExpiredEvent(state, now(), a.approvalId);
      const s = ev ? await this.append(state, ev) : state;
      await this.drive(s, ctx.redelivered, state, ctx);
    });
  }

  /**
   * Loops decide → append → effects until the run waits on something outside. `origin` is the
   * state before the command's own appends (the approvals read model is written on a change).
   */
  private async drive(initial: RunState, recovering: boolean, origin: RunState = initial, ctx?: JsContext): Promise<void> {
    // the status before this command: a change made by its own appends (a decision, a cancel) counts too
    const statusBefore = origin.status;
    let s: RunState;
    try {
      s = await this.loop(await this.settlePending(initial), recovering, ctx);
    } catch (e) {
      // e.g. waiting for the cost-governor: a status change appended before still reaches the index
      const held = this.cache.get(runKeyString(initial));
      if (held && held.status !== statusBefore) await this.afterDrive(statusBefore, held).catch(() => undefined);
      if (held) await this.syncApprovals(origin, held, recovering).catch(() => undefined);
      throw e;
    }
    await this.syncApprovals(origin, s, recovering);
    await this.afterDrive(statusBefore, s);
  }

  /** Writes the approvals read model; on failure the run is reloaded on redelivery and written again. */
  private async syncApprovals(before: RunState | null, after: RunState, force: boolean): Promise<void> {
    try {
      await this.approvals.sync(before, after, force);
    } catch (err) {
      this.cache.delete(runKeyString(after));
      throw new RetryLaterError('the approvals read model could not be written; retrying', 500, { cause: err });
    }
  }

  private async loop(initial: RunState, recovering: boolean, ctx?: JsContext): Promise<RunState> {
    let s = initial;
    let redispatch = recovering;
    for (let guard = 0; guard < 10_000; guard++) {
      const d = decide(s, { now: now(), globalMaxSteps: this.config.globalMaxSteps, redispatch, loop: this.config.loopDetection });
      redispatch = false;
      const llmCall = d.effects.find((e) => e.kind === 'call_llm');
      if (llmCall) {
        s = await this.llmStep(s, d, llmCall, ctx);
        if (isTerminal(s)) break;
        continue;
      }
      const ask = d.effects.find((e) => e.kind === 'ask_planner');
      if (ask) {
        s = await this.askPlanner(s, ask, ctx);
        continue;
      }
      await this.commitSession(s, d);
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
        } else if (eff.kind === 'schedule_approval_timeout') {
          // approval.requested is durable: arm its timer (message id = approval id: armed once)
          await this.bus.send('approval.timeout', eff.timer, `timer:${eff.timer.approvalId}`);
          waiting = true;
        } else if (eff.kind === 'resolve_tools') {
          s = await this.resolveTools(s, eff.refs, eff.sessionId);
        }
      }
      if (waiting || isTerminal(s)) break;
    }
    return s;
  }

  /**
   * An LLM step (react, or an external planner's `call_llm`): `step.started` and `llm.called` are
   * made durable (with the worst case reserved in between), then the model is called through the
   * inference-router with the worker's lock on the run held; its streamed text is appended as
   * coalesced `llm.delta` events while it comes, its reply as `llm.completed`, and the call's
   * actual cost is settled (`budget.settled`). A recorded reply is never asked for again.
   */
  private async llmStep(initial: RunState, d: Decision, eff: Extract<Effect, { kind: 'call_llm' }>, ctx?: JsContext): Promise<RunState> {
    let s = initial;
    const last = d.events[d.events.length - 1];
    for (const e of d.events.slice(0, -1)) s = await this.append(s, e); // step.started
    const prepared = await this.llm.prepare(s, eff);
    const reservedBefore = s.llmCall?.reservedUsd;
    if (last?.type === 'llm.called') {
      // a new call: the tenant's breaker first, then the worst case held with the cost-governor
      const stop = this.budget.breakerReason(s.tenantId);
      if (stop) return this.append(s, budgetExceededEvent(s, now(), stop));
      if (prepared.worstUsd > 0 && reservedBefore === undefined) {
        const r = await this.budget.reserveLlm(s, eff.callKey, prepared.model ?? 'auto', prepared.worstUsd);
        if (!r.granted) return this.append(s, budgetExceededEvent(s, now(), `${r.reason} (the LLM call of step ${eff.step} may cost up to $${prepared.worstUsd})`));
        s = await this.append(s, budgetReservedEvent(s, now(), eff.step, eff.callKey, r.usd));
      }
      s = await this.append(s, last);
    }
    const reserved = s.llmCall?.reservedUsd !== undefined;
    const request = { ...prepared.request, ...(reserved ? { callKey: eff.callKey } : {}) };
    // streamed text, appended in order while the call runs (the lock on the run is ours)
    let cur = s;
    let chain: Promise<void> = Promise.resolve();
    let deltaError: unknown;
    const onText = (text: string): void => {
      chain = chain.then(async () => {
        if (deltaError !== undefined) return;
        try { cur = await this.append(cur, llmDeltaEvent(cur, now(), eff.callKey, text)); } catch (e) { deltaError = e; }
      });
    };
    let res: InferenceChatResponse;
    const stopKeepAlive = this.keepAlive(ctx);
    try {
      res = await this.llm.call(request, onText);
    } catch (e) {
      await chain;
      if (!(e instanceof LlmRefusedError)) throw e;
      // refused for good (no such model, an invalid request): release the hold, fail the run
      s = cur;
      if (reserved) {
        const charged = await this.budget.settle(s, eff.callKey, 0, { kind: 'llm', model: prepared.model ?? 'auto' });
        s = await this.append(s, budgetSettledEvent(s, now(), eff.step, eff.callKey, charged));
      }
      return this.append(s, failEvent(s, now(), { code: 'planner_error', message: `the LLM call of step ${eff.step} was refused: ${e.message}` }));
    } finally {
      stopKeepAlive();
    }
    await chain;
    if (deltaError !== undefined) throw deltaError;
    s = cur;
    const completed = llmCompletedEvent(s, now(), eff.callKey, res);
    if (!completed) return s;
    s = await this.append(s, completed);
    this.observeLlm(s, res);
    if (reserved) {
      // the router settles the call under its key when it can; otherwise (or to learn the amount) we do
      const charged = res.settled?.usd ?? await this.budget.settle(s, eff.callKey, res.costUsd, { kind: 'llm', model: res.model, usage: res.usage });
      s = await this.append(s, budgetSettledEvent(s, now(), eff.step, eff.callKey, charged));
    }
    return s;
  }

  /**
   * Asks the run's external planner (planner.v1) for its next decision and records the answer
   * (`planner.decided`, then its partial outputs as `llm.delta`) before anything is acted on. A
   * planner with no instance up makes the run wait (RetryLaterError) until it is back.
   */
  private async askPlanner(initial: RunState, eff: Extract<Effect, { kind: 'ask_planner' }>, ctx?: JsContext): Promise<RunState> {
    let s = initial;
    const request = { ...eff.request, tools: await this.catalog.view(s.tenantId, Object.values(s.tools)) };
    const stopKeepAlive = this.keepAlive(ctx);
    let decided;
    try {
      decided = await this.planners.ask(request);
    } finally {
      stopKeepAlive();
    }
    s = await this.append(s, plannerDecidedEvent(s, now(), decided));
    const texts = [...(decided.emit ?? []), ...(decided.decision.kind === 'emit' ? [textOf(decided.decision.output)] : [])];
    for (const text of texts) s = await this.append(s, llmDeltaEvent(s, now(), decided.decisionKey, text));
    return s;
  }

  /** A run of a session-keeping planner that is about to complete records its turn and memory first. */
  private async commitSession(s: RunState, d: Decision): Promise<void> {
    if (!s.sessionId || !s.agent || !usesSession(s.agent)) return;
    const done = d.events.find((e) => e.type === 'run.completed');
    if (done?.type === 'run.completed') await this.sessions.commit(s, done.data.output, done.at);
  }

  /** Keeps the command being handled from being redelivered while a long call runs (JetStream in-progress acks). */
  private keepAlive(ctx?: JsContext): () => void {
    if (!ctx) return () => undefined;
    const t = setInterval(() => { try { ctx.working(); } catch { /* the message is gone: nothing to keep */ } }, Math.max(500, Math.floor(this.config.ackWaitMs / 3)));
    return () => clearInterval(t);
  }

  private observeLlm(s: RunState, res: InferenceChatResponse): void {
    metrics.steps.inc({ tenant: s.tenantId });
    metrics.stepDuration.observe({ tenant: s.tenantId }, res.timing.totalMs / 1000);
  }

  /** Records the settlement of a finished reserved call that was not yet recorded (after a crash). */
  private async settlePending(s: RunState): Promise<RunState> {
    if (!s.unsettled || isTerminal(s)) return s;
    const { callKey, usd } = s.unsettled;
    const last = s.transcript?.[s.transcript.length - 1];
    const call = last?.kind === 'llm' && callKey === `${s.runId}:${last.step}:0` ? { kind: 'llm' as const, model: last.model ?? 'auto', usage: last.usage } : undefined;
    const charged = await this.budget.settle(s, callKey, usd, call);
    return this.append(s, budgetSettledEvent(s, now(), s.step, callKey, charged));
  }

  private async dispatch(cmd: CommandMap['tool.execute']): Promise<void> {
    // a tool with a credential gets a fresh, single-use delegation from the broker (never journaled)
    await this.bus.send('tool.execute', await withDelegation(this.rpc, cmd), toolExecuteMsgId(cmd.callKey, cmd.attempt));
    this.dispatchedAt.set(cmd.callKey, process.hrtime.bigint());
  }

  /**
   * The call in flight came back refused for a spent or expired delegation (a tool-runner died
   * after redeeming it, or the command waited too long): the same call goes out again, same call
   * key, with a fresh delegation, up to MAX_DELEGATION_ATTEMPTS in all. Nothing is journaled: the
   * call is the one `tool.called` recorded. The attempt number comes from the result, so a
   * redelivered result sends the same re-send again, which the command stream's dedupe drops.
   */
  private async resendWithFreshDelegation(s: RunState, res: CommandMap['tool.result']): Promise<boolean> {
    if (res.ok || !SPENT_DELEGATION_CODES.has(res.error.code) || isTerminal(s)) return false;
    const attempt = (res.attempt ?? 0) + 1;
    if (attempt >= MAX_DELEGATION_ATTEMPTS || s.inFlight?.callKey !== res.callKey || s.inFlight.phase !== 'called') return false;
    const d = decide(s, { now: now(), globalMaxSteps: this.config.globalMaxSteps, redispatch: true, loop: this.config.loopDetection });
    const eff = d.events.length === 0 ? d.effects.find((e) => e.kind === 'dispatch_tool') : undefined;
    if (!eff) return false;
    this.logger.warn({ runId: s.runId, step: res.step, attempt, code: res.error.code }, 'the call\'s delegation was spent before the tool ran; sending the call again with a fresh one');
    await this.dispatch({ ...eff.command, attempt });
    return true;
  }

  private async resolveTools(s: RunState, refs: string[], sessionId?: string): Promise<RunState> {
    let tools: Record<string, PinnedTool>;
    try {
      tools = (await this.rpc.call('tools.resolve', { tenantId: s.tenantId, refs })).tools;
    } catch (e) {
      if (e instanceof AgentmeshError && (e.code === 'invalid_argument' || e.code === 'not_found')) {
        return this.append(s, failEvent(s, now(), { code: 'invalid_input', message: e.message }));
      }
      throw new RetryLaterError('tool registry unavailable; the run waits', 500, { cause: e });
    }
    // the tenant policy's `tools.run` verdict per tool, recorded as `requireApproval` on the pinned
    // tool: replay and recovery never ask the policy again; an unreadable policy makes the run wait
    tools = await this.toolPolicy.apply(s.tenantId, s.agent?.name ?? '', tools);
    try {
      // the session as the run starts with it, recorded: replay and recovery never read it again
      const session = sessionId ? await this.sessions.read(s.tenantId, sessionId) : undefined;
      return this.append(s, toolsResolvedEvent(s, now(), tools, session));
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
        // its slot of the tenant's concurrent-run cap (a miss heals: the gateway reconciles at the cap)
        await this.active.finish(s.tenantId, s.runId).catch((err: unknown) => this.logger.warn({ err, runId: s.runId }, 'could not free the run\'s slot of the concurrent-run cap; it is reconciled at the cap'));
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

  private async state(k: RunKey, fresh = false): Promise<{ state: RunState; recovered: boolean }> {
    const key = runKeyString(k);
    if (fresh) this.cache.delete(key);
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

/** A planner's partial output as text. */
const textOf = (v: JsonValue): string => (typeof v === 'string' ? v : JSON.stringify(v));

/** Tool-runner failures that mean the tool was never invoked: such a call costs nothing. */
const NOT_INVOKED = new Set(['tool_not_found', 'tool_disabled', 'invalid_arguments', 'egress_denied', 'transport_unavailable']);

/** What a finished tool call costs: its per-call price, unless the tool was never invoked. */
function actualCost(res: CommandMap['tool.result'], reservedUsd: number): number {
  // a call refused for its credential or delegation never reached the tool either
  return !res.ok && (NOT_INVOKED.has(res.error.code) || /^(credential|delegation)_/.test(res.error.code)) ? 0 : reservedUsd;
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

  /** Holds the worst case of an LLM call; idempotent on the call key. */
  async reserveLlm(s: RunState, callKey: string, model: string, usd: number): Promise<ReserveResult> {
    const limitUsd = s.agent?.limits.budgetUsd;
    return this.ask(() => this.rpc.call('budget.reserve', {
      tenantId: s.tenantId, callKey, runId: s.runId, agent: s.agent?.name ?? '', kind: 'llm', model, usd,
      run: { spentUsd: s.cost.usd, ...(limitUsd !== undefined ? { limitUsd } : {}) },
    }));
  }

  /** Charges the call (once per call key); resolves with what was charged. A tool call unless `llm` says otherwise. */
  async settle(s: RunState, callKey: string, usd: number, llm?: { kind: Extract<CallKind, 'llm'>; model: string; usage?: { inputTokens: number; outputTokens: number } }): Promise<number> {
    const tool = s.inFlight?.tool ?? s.history[s.history.length - 1]?.tool;
    const call = llm
      ? { runId: s.runId, agent: s.agent?.name ?? '', kind: 'llm' as const, model: llm.model }
      : { runId: s.runId, agent: s.agent?.name ?? '', kind: 'tool' as const, ...(tool ? { tool } : {}) };
    const usage = llm?.usage ? { usage: { inputTokens: llm.usage.inputTokens, outputTokens: llm.usage.outputTokens } } : {};
    return (await this.ask(() => this.rpc.call('budget.settle', { tenantId: s.tenantId, callKey, usd, ...usage, call }))).usd;
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

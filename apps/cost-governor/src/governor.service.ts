import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { jetstreamManager } from '@nats-io/jetstream';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  BREAKER_KEYS, BUCKETS, unavailable,
  type BudgetSettings, type BudgetView, type ReserveRequest, type ReserveResult, type SettleRequest, type SettleResult,
  type UsageGroupBy, type UsageReport, type CallKind,
} from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CONFIG, LOGGER, NATS, openBucket } from '#libs/messaging';
import { KvDocuments, STORE, type Repositories } from '#libs/store';
import type { Logger } from '#libs/telemetry';
import {
  advance, configure, emptyBudget, fmt, reserve, settle, statusOf, toMicros, toUsd, viewOf, type BudgetDoc,
} from './budget-math.js';
import { budgetsCasStore, CasBook } from './cas-book.js';
import { budgetMetrics } from './metrics.js';
import { UsageLedger } from './usage.js';

/** One settled call, as the governor remembers it (what a replayed settlement answers). */
export interface CallRecord {
  state: 'settled';
  runId: string;
  agent: string;
  kind: CallKind;
  tool?: string;
  model?: string;
  /** micro-dollars held and charged */
  reserved: number;
  settled?: number;
  at: string;
}

/** The circuit breaker flag the orchestrators watch: open while the tenant's budget is exhausted. */
export interface BreakerFlag {
  open: boolean;
  /** Revision of the budget document this flag was computed from (older writers lose). */
  budgetRevision: number;
  reason?: string;
  at: string;
}

/** Within this age a replayed settlement publishes its usage event again (the stream's duplicate window is 2 min). */
const USAGE_DEDUPE_MS = 90_000;
/** Call records live this long: far beyond any redelivery or recovery of the call. */
const CALL_RECORD_TTL_MS = 30 * 24 * 3600_000;
const TICK_MS = 15_000;

/**
 * Budgets per tenant (with optional per-agent caps) and per run, reservations before calls,
 * settlements after, the tenant circuit breaker and usage metering.
 *
 * Idempotency lives in the budget document: a reservation holds the call's worst case under its
 * call key (asked again, the hold is found and nothing more is held), and the settlement removes
 * that hold in the same write that charges the actual cost (asked again, there is no hold and
 * nothing is charged; the call record written after it says what was). Atomicity: every change to
 * a budget document is a compare-and-set (CasBook), so concurrent reservations, from any number of
 * governors, never take spent + reserved past the limit.
 */
@Injectable()
export class Governor implements OnModuleInit, OnModuleDestroy {
  private budgets!: CasBook<BudgetDoc>;
  private calls!: KvDocuments<CallRecord>;
  private flags!: KvDocuments<BreakerFlag>;
  private budgetKv!: KV;
  usage!: UsageLedger;
  /** The breaker write following the latest budget change, per tenant (a PUT waits for it). */
  private readonly syncing = new Map<string, Promise<void>>();
  /** Breaker flags as last seen in KV (watched), by tenant. */
  private readonly breakers = new Map<string, BreakerFlag & { revision: number }>();
  private watch?: AsyncIterable<KvWatchEntry> & { stop(): void };
  private tick?: NodeJS.Timeout;

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    /** Budget documents (`budgets`), usage rollups (`usage`) and the fold's checkpoint; call records and breaker flags are KV. */
    @Inject(STORE) private readonly store: Repositories,
  ) {}

  async onModuleInit(): Promise<void> {
    this.budgetKv = await openBucket(this.nc, BUCKETS.budgets);
    // the budget documents through the store's `budgets` repository (KV `am_budgets` `<t>.budget`, or MongoDB `budgets`)
    this.budgets = new CasBook<BudgetDoc>(budgetsCasStore(this.store), (tenantId) => emptyBudget(tenantId, Date.now()), (tenantId, _p, doc, rev) => this.committed(tenantId, doc, rev));
    this.flags = new KvDocuments(this.budgetKv);
    const callsKv = await openBucket(this.nc, BUCKETS.budgetCalls);
    this.calls = new KvDocuments(callsKv);
    await this.expireCallRecords();
    this.usage = new UsageLedger(this.nc, this.store, this.logger);
    await this.usage.start(this.config.streamReplicas);
    const w = await this.budgetKv.watch({ key: BREAKER_KEYS });
    this.watch = w;
    void (async () => {
      for await (const e of w) this.breakerSeen(e);
    })().catch((err) => this.logger.error({ err }, 'breaker watch ended'));
    this.tick = setInterval(() => void this.advanceOpenBreakers(), TICK_MS);
    this.tick.unref();
  }

  onModuleDestroy(): void {
    this.watch?.stop();
    this.usage?.stop();
    if (this.tick) clearInterval(this.tick);
  }

  /** Call records expire with the bucket's max age (set here: provisioning creates buckets without one). */
  private async expireCallRecords(): Promise<void> {
    try {
      const jsm = await jetstreamManager(this.nc);
      const name = `KV_${BUCKETS.budgetCalls}`;
      const info = await jsm.streams.info(name);
      const maxAge = CALL_RECORD_TTL_MS * 1_000_000;
      if (info.config.max_age !== maxAge) await jsm.streams.update(name, { ...info.config, max_age: maxAge });
    } catch (err) {
      this.logger.warn({ err }, 'could not set the age limit of call records');
    }
  }

  private op<R>(tenantId: string, fn: (doc: BudgetDoc, now: number) => { result: R; changed: boolean }): Promise<R> {
    return this.budgets.apply(tenantId, ['budget'], (doc) => {
      const now = Date.now();
      const moved = advance(doc, now, this.config.budgetHoldTtlMs);
      const r = fn(doc, now);
      const changed = r.changed || moved;
      if (changed) doc.updatedAt = new Date(now).toISOString();
      return { result: r.result, changed };
    });
  }

  /** Budget writes of this process that lost a compare-and-set race and were applied again. */
  get casConflicts(): number {
    return this.budgets.conflicts;
  }

  /**
   * Holds the call's worst case in one compare-and-set of the budget document. The hold, keyed by
   * the call key, is the idempotency: asked again while it exists, the same grant comes back and
   * nothing more is held. A refusal changes nothing and is not remembered (asked again later, the
   * answer follows the budget then).
   */
  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    const micros = toMicros(req.usd);
    const run = req.run ? { spent: toMicros(req.run.spentUsd), ...(req.run.limitUsd !== undefined ? { limit: toMicros(req.run.limitUsd) } : {}) } : undefined;
    const meta = { run: req.runId, kind: req.kind, ...(req.tool ? { tool: req.tool } : {}), ...(req.model ? { model: req.model } : {}) };
    const outcome = await this.op(req.tenantId, (doc, now) => {
      const r = reserve(doc, { callKey: req.callKey, micros, agent: req.agent, run, meta }, now);
      return { result: r.outcome, changed: r.changed };
    });
    return outcome.granted ? { granted: true, usd: toUsd(outcome.micros), replayed: outcome.replayed } : outcome;
  }

  /**
   * Charges the call and releases its hold in one compare-and-set: removing the hold is what makes
   * the charge happen once. Then the call record (for replays: what was charged) and the usage
   * event (message id from the call key) are written. Asked again, the hold is gone: nothing is
   * charged and the recorded amount comes back.
   */
  async settle(req: SettleRequest): Promise<SettleResult> {
    const micros = toMicros(req.usd);
    const r = await this.op(req.tenantId, (doc) => {
      const out = settle(doc, req.callKey, micros);
      return { result: out, changed: out.applied };
    });
    if (r.applied && r.hold) {
      const h = r.hold;
      // an LLM call is reserved before the router picks its model (`auto`): the settlement names the model that answered
      const model = req.call?.kind === 'llm' && req.call.model ? req.call.model : h.model;
      const rec: CallRecord = {
        state: 'settled', runId: h.run, agent: h.agent, kind: h.kind, reserved: h.m, settled: micros, at: new Date().toISOString(),
        ...(h.tool ? { tool: h.tool } : {}), ...(model ? { model } : {}),
      };
      await Promise.all([this.guard(() => this.calls.put(req.tenantId, [req.callKey], rec)), this.publishUsage(req, rec, micros)]);
      return { usd: toUsd(micros), replayed: false };
    }
    // already settled: answer what was charged. No record yet means a first settlement still
    // writing it (wait a moment), or one that died between the charge and the record (write it now).
    for (let attempt = 0; ; attempt++) {
      const prior = await this.guard(() => this.calls.get(req.tenantId, req.callKey));
      if (prior) {
        // a replay soon after the first attempt may follow a lost publish: publish again (deduplicated by message id)
        if (Date.now() - Date.parse(prior.at) < USAGE_DEDUPE_MS) await this.publishUsage(req, prior, prior.settled ?? micros);
        return { usd: toUsd(prior.settled ?? 0), replayed: true };
      }
      if (attempt >= 3) break;
      await new Promise((res) => setTimeout(res, 25));
    }
    const c = req.call;
    const rec: CallRecord = {
      state: 'settled', runId: c?.runId ?? '', agent: c?.agent ?? '', kind: c?.kind ?? 'tool', reserved: micros, settled: micros, at: new Date().toISOString(),
      ...(c?.tool ? { tool: c.tool } : {}), ...(c?.model ? { model: c.model } : {}),
    };
    if (!(await this.guard(() => this.calls.create(req.tenantId, [req.callKey], rec)))) return this.settle(req);
    await this.publishUsage(req, rec, micros);
    return { usd: toUsd(micros), replayed: true };
  }

  private async publishUsage(req: SettleRequest, rec: CallRecord, micros: number): Promise<void> {
    await this.guard(() => this.usage.publish({
      tenantId: req.tenantId, runId: rec.runId, agent: rec.agent, callKey: req.callKey, kind: rec.kind,
      ...(rec.tool ? { tool: rec.tool } : {}), ...(rec.model ? { model: rec.model } : {}),
      usd: toUsd(micros), inputTokens: req.usage?.inputTokens ?? 0, outputTokens: req.usage?.outputTokens ?? 0,
      at: rec.at,
    }));
  }

  async get(tenantId: string): Promise<BudgetView> {
    const { doc } = await this.guard(() => this.budgets.read(tenantId, ['budget']));
    advance(doc, Date.now(), this.config.budgetHoldTtlMs);
    this.gauges(tenantId, doc);
    return viewOf(doc);
  }

  /** Sets the budget; answers once the circuit breaker reflects it (raising the limit lets runs start). */
  async put(tenantId: string, settings: BudgetSettings): Promise<BudgetView> {
    const doc = await this.op(tenantId, (d, now) => {
      configure(d, settings, now);
      return { result: structuredClone(d), changed: true };
    });
    await this.syncing.get(tenantId)?.catch(() => undefined);
    return viewOf(doc);
  }

  async report(tenantId: string, from: Date, to: Date, groupBy?: UsageGroupBy): Promise<UsageReport> {
    return this.guard(() => this.usage.report(tenantId, from, to, groupBy));
  }

  /** After every budget write: gauges, and the breaker flag when the state crossed the limit. */
  private committed(tenantId: string, doc: BudgetDoc, revision: number): void {
    this.gauges(tenantId, doc);
    this.sync(tenantId, doc, revision);
  }

  private sync(tenantId: string, doc: BudgetDoc, revision: number): void {
    const p = this.syncBreaker(tenantId, doc, revision).catch((err) => this.logger.warn({ err, tenant: tenantId }, 'breaker update failed'));
    this.syncing.set(tenantId, p);
    void p.finally(() => { if (this.syncing.get(tenantId) === p) this.syncing.delete(tenantId); });
  }

  private gauges(tenantId: string, doc: BudgetDoc): void {
    const v = viewOf(doc);
    budgetMetrics.spent.set({ tenant: tenantId }, v.spentUsd);
    if (v.limitUsd === null) {
      budgetMetrics.limit.remove({ tenant: tenantId });
      budgetMetrics.remaining.remove({ tenant: tenantId });
    } else {
      budgetMetrics.limit.set({ tenant: tenantId }, v.limitUsd);
      budgetMetrics.remaining.set({ tenant: tenantId }, v.remainingUsd ?? 0);
    }
  }

  /**
   * Writes the breaker flag when it differs from the budget's state (open: exhausted). A flag
   * computed from an older budget revision never overwrites one computed from a newer revision.
   */
  private async syncBreaker(tenantId: string, doc: BudgetDoc, revision: number): Promise<void> {
    const open = statusOf(doc) === 'exhausted';
    if ((this.breakers.get(tenantId)?.open ?? false) === open) return;
    const flag: BreakerFlag = {
      open, budgetRevision: revision, at: new Date().toISOString(),
      ...(open ? { reason: `the tenant's budget of ${fmt(doc.limit ?? 0)} per ${doc.period} is exhausted` } : {}),
    };
    for (let attempt = 0; attempt < 16; attempt++) {
      const cur = await this.flags.getWithRevision(tenantId, 'breaker');
      if (cur && (cur.value.budgetRevision >= revision || cur.value.open === open)) return;
      if (!cur && !open) return; // no flag is a closed breaker
      const ok = cur ? await this.flags.update(tenantId, ['breaker'], flag, cur.revision) : await this.flags.create(tenantId, ['breaker'], flag);
      if (ok) {
        this.breakers.set(tenantId, { ...flag, revision: 0 });
        this.logger.info({ tenant: tenantId, open }, open ? 'budget exhausted: circuit breaker open' : 'budget available: circuit breaker closed');
        return;
      }
    }
  }

  private breakerSeen(e: KvWatchEntry): void {
    const tenantId = e.key.split('.')[0];
    if (e.operation !== 'PUT' || e.length === 0) { this.breakers.delete(tenantId); return; }
    const flag = e.json<BreakerFlag>();
    this.breakers.set(tenantId, { ...flag, revision: e.revision });
    // a flag from an older budget than the one this process holds, that disagrees with it: fix it
    const mine = this.budgets.peek(tenantId, ['budget']);
    if (mine && mine.revision > flag.budgetRevision && (statusOf(mine.doc) === 'exhausted') !== flag.open) this.sync(tenantId, mine.doc, mine.revision);
  }

  /** Periodically: a new period (or released holds) may close an open breaker with no traffic. */
  private async advanceOpenBreakers(): Promise<void> {
    for (const [tenantId, flag] of this.breakers) {
      if (!flag.open) continue;
      try {
        await this.op(tenantId, () => ({ result: null, changed: false })); // rolls the period over if it ended
        const { doc, revision } = await this.budgets.read(tenantId, ['budget']);
        if (statusOf(doc) !== 'exhausted') await this.syncBreaker(tenantId, doc, revision);
      } catch (err) {
        this.logger.warn({ err, tenant: tenantId }, 'breaker check failed');
      }
    }
  }

  /** Store failures are `unavailable` to callers (who retry), never a wrong answer. */
  private async guard<R>(fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (e) {
      if ((e as { code?: string }).code === 'unavailable') throw e;
      throw unavailable('budget store unavailable', e);
    }
  }
}

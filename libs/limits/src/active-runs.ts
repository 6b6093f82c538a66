import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentmeshError, BUCKETS, HEADERS, isTerminalEventType, journalSubject, STREAMS } from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CONFIG, LOGGER, NATS, openBucket } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { activeCount, admit, EMPTY_SET, parseActiveSet, removeAll, type ActiveSet } from './active-set.js';

/** A run with no journal this long after admission was lost (its start command never ran). */
export const LOST_RUN_MS = 5 * 60_000;
/** At most one reconciliation per tenant per instance this often (floods at the cap stay cheap). */
const RECONCILE_EVERY_MS = 250;
/** Compare-and-set conflicts tolerated for one change before giving up (each waits a little longer). */
const MAX_CAS_CONFLICTS = 50;
const enc = new TextEncoder();

const isCasFailure = (e: unknown): boolean => /wrong last sequence|key exists|10071/i.test(String((e as Error)?.message ?? ''));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The concurrent-run cap: a per-tenant set of admitted, not yet ended runs in JetStream KV
 * (`am_active_runs`, `<tenant>.active`, active-set.ts), changed with compare-and-set.
 *
 * Why a set in KV: admission reads it with one KV get and changes it with one compare-and-set, on
 * whichever gateway instance takes the request, and a cap enforced across instances needs a
 * shared, atomically updated count. Run ids rather than a bare counter make it idempotent (a
 * redelivered end cannot decrement twice) and self-healing: when a tenant is at its cap, the
 * listed runs are checked against the journal (one direct get of each run's last event; the
 * journal is the source of truth) and ended or lost runs are dropped before the tenant is refused.
 *
 * Who changes it: the gateway admits a run (its id is known before its start command goes out)
 * with one compare-and-set, and releases it if the admission fails; the orchestrator removes runs
 * (`finish`) right after it appends their terminal events, the ends of one tenant coalesced into
 * one compare-and-set. An orchestrator that dies between the two leaves the run in the set until
 * the reconciliation above drops it. (The set used to be emptied by a gateway consumer of
 * every journal event, filtered on the type header: ~30 deliveries per 10-step run, which lagged
 * under load and let finished runs hold the cap.) The rejected alternative, counting
 * non-terminal rows of the run index, costs a scan per admission.
 */
@Injectable()
export class ActiveRuns implements OnModuleInit {
  private kv!: KV;
  private jsm!: JetStreamManager;
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly reconciled = new Map<string, number>();
  private readonly reconciling = new Map<string, Promise<number>>();
  /** Ends waiting to be written, per tenant. */
  private readonly ending = new Map<string, { ids: Set<string>; done: Promise<void> }>();
  private readonly cache = new Map<string, { set: ActiveSet; revision: number }>();
  readonly cap: number;

  constructor(@Inject(NATS) private readonly nc: NatsConnection, @Inject(CONFIG) config: AppConfig, @Inject(LOGGER) private readonly logger: Logger) {
    this.cap = config.maxConcurrentRunsPerTenant;
  }

  async onModuleInit(): Promise<void> {
    this.kv = await openBucket(this.nc, BUCKETS.activeRuns);
    this.jsm = await jetstreamManager(this.nc);
  }

  /**
   * Counts a run about to be started against its tenant's cap; refuses with 429
   * (`resource_exhausted`, reason `concurrent_runs`) when the tenant is at its cap. Idempotent.
   */
  async admit(tenant: string, runId: string, sessionId?: string, now = Date.now()): Promise<void> {
    const attempt = () => this.mutate(tenant, (s) => { const r = admit(s, runId, sessionId, this.cap, now); return { next: r.set === s ? undefined : r.set, result: r.ok }; });
    if (await attempt()) return;
    await this.reconcile(tenant);
    if (await attempt()) return;
    throw new AgentmeshError(
      'resource_exhausted',
      `the tenant has ${this.cap} runs in progress, its cap of concurrent runs: start more when some have ended`,
      { reason: 'concurrent_runs', retryAfterSeconds: 1 },
    );
  }

  /** Gives back the slot of a run whose admission failed. */
  async release(tenant: string, runId: string): Promise<void> {
    await this.mutate(tenant, (s) => { const next = removeAll(s, [runId]); return { next: next === s ? undefined : next, result: undefined }; });
  }

  /**
   * A run ended (its terminal event is in the journal): removes it. The ends of one tenant that
   * arrive while a change is being written are removed together by the next one.
   */
  finish(tenant: string, runId: string): Promise<void> {
    let batch = this.ending.get(tenant);
    if (!batch) {
      const b: { ids: Set<string>; done: Promise<void> } = { ids: new Set<string>(), done: Promise.resolve() };
      b.done = this.mutate(tenant, (s) => {
        if (this.ending.get(tenant) === b) this.ending.delete(tenant); // closed: later ends start the next batch
        const next = removeAll(s, b.ids);
        return { next: next === s ? undefined : next, result: undefined };
      });
      // a batch that failed before it was written takes no more ends (they start a new one)
      void b.done.catch(() => { if (this.ending.get(tenant) === b) this.ending.delete(tenant); });
      this.ending.set(tenant, b);
      batch = b;
    }
    batch.ids.add(runId);
    return batch.done;
  }

  /** Runs of the tenant currently counted against the cap. */
  async count(tenant: string): Promise<number> {
    return activeCount((await this.read(tenant)).set);
  }

  /**
   * Drops runs that ended (their last journal event is terminal) or were lost (no journal long
   * after admission). Runs when a tenant is at its cap; at most every RECONCILE_EVERY_MS.
   */
  reconcile(tenant: string): Promise<number> {
    // requests refused together wait for one reconciliation rather than skip it
    const running = this.reconciling.get(tenant);
    if (running) return running;
    const now = Date.now();
    if (now - (this.reconciled.get(tenant) ?? 0) < RECONCILE_EVERY_MS) return Promise.resolve(0);
    this.reconciled.set(tenant, now);
    if (this.reconciled.size > 10_000) this.reconciled.clear();
    const run = this.reconcileNow(tenant, now).finally(() => this.reconciling.delete(tenant));
    this.reconciling.set(tenant, run);
    return run;
  }

  private async reconcileNow(tenant: string, now: number): Promise<number> {
    const { set } = await this.read(tenant);
    const ids = Object.entries(set.runs);
    const gone: string[] = [];
    for (let i = 0; i < ids.length; i += 16) {
      await Promise.all(ids.slice(i, i + 16).map(async ([runId, e]) => {
        const last = await this.jsm.direct.getMessage(STREAMS.journal.name, { last_by_subj: journalSubject({ tenantId: tenant, runId }) }).catch(() => null);
        const type = last?.header?.get(HEADERS.type) ?? '';
        if ((last && isTerminalEventType(type)) || (!last && now - e.at > LOST_RUN_MS)) gone.push(runId);
      }));
    }
    if (gone.length) {
      await this.mutate(tenant, (s) => ({ next: removeAll(s, gone), result: undefined }));
      this.logger.info({ tenant, dropped: gone.length }, 'active runs reconciled against the journal');
    }
    return gone.length;
  }

  private key(tenant: string): string {
    return `${tenant}.active`;
  }

  private async read(tenant: string): Promise<{ set: ActiveSet; revision: number }> {
    const e = await this.kv.get(this.key(tenant));
    let cur: { set: ActiveSet; revision: number };
    if (!e) cur = { set: EMPTY_SET, revision: 0 };
    else if (e.operation !== 'PUT' || e.length === 0) cur = { set: EMPTY_SET, revision: e.revision };
    else cur = { set: parseActiveSet(e.json()), revision: e.revision };
    this.remember(tenant, cur);
    return cur;
  }

  private remember(tenant: string, cur: { set: ActiveSet; revision: number }): void {
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(tenant, cur);
  }

  /** Read-modify-write with compare-and-set; one tenant's changes are serialised in this instance. */
  private mutate<R>(tenant: string, change: (s: ActiveSet) => { next: ActiveSet | undefined; result: R }): Promise<R> {
    const prev = this.queues.get(tenant) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(async () => {
      for (let conflicts = 0; conflicts <= MAX_CAS_CONFLICTS;) {
        // the last value this instance wrote or read: right unless another instance wrote since,
        // which the compare-and-set then refuses (and the value is read again)
        const cached = this.cache.get(tenant);
        const cur = cached ?? await this.read(tenant);
        const { next, result } = change(cur.set);
        if (!next) {
          // nothing to write: only a fresh read may say so (a stale copy could refuse a free slot)
          if (!cached) return result;
          this.cache.delete(tenant);
          continue;
        }
        try {
          const value = enc.encode(JSON.stringify(next));
          const revision = cur.revision === 0 ? await this.kv.create(this.key(tenant), value) : await this.kv.update(this.key(tenant), value, cur.revision);
          this.remember(tenant, { set: next, revision });
          return result;
        } catch (err) {
          this.cache.delete(tenant);
          if (!isCasFailure(err)) throw err;
          conflicts++;
          // another instance wrote in between: back off a little (jittered) so writers do not collide again
          await sleep(Math.random() * Math.min(20, conflicts * 2));
        }
      }
      throw new AgentmeshError('unavailable', 'the active-run count is too contended; retry');
    });
    this.queues.set(tenant, run);
    void run.catch(() => undefined).finally(() => { if (this.queues.get(tenant) === run) this.queues.delete(tenant); });
    return run;
  }
}

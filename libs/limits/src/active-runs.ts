import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentmeshError, BUCKETS, HEADERS, isTerminalEventType, journalSubject, STREAMS } from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CONFIG, LOGGER, NATS, openBucket } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { activeCount, commit, EMPTY_SET, finish, release, removeAll, reserve, type ActiveEntry, type ActiveSet } from './active-set.js';

/** A run with no journal this long after admission was lost (its start command never ran). */
export const LOST_RUN_MS = 5 * 60_000;
/** At most one reconciliation per tenant per instance this often (floods at the cap stay cheap). */
const RECONCILE_EVERY_MS = 250;
const MAX_CAS_ATTEMPTS = 50;
const enc = new TextEncoder();
const dec = new TextDecoder();

const isCasFailure = (e: unknown): boolean => /wrong last sequence|key exists|10071/i.test(String((e as Error)?.message ?? ''));

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
 * Who changes it: the gateway reserves, commits and releases slots as it admits runs; the
 * orchestrator removes a run (`finish`) right after it appends the run's terminal event, one
 * compare-and-set per run. An orchestrator that dies between the two leaves the run in the set
 * until the reconciliation above drops it. (The set used to be emptied by a gateway consumer of
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
   * Reserves a slot for a run about to be admitted and returns its token; refuses with 429
   * (`resource_exhausted`, reason `concurrent_runs`) when the tenant is at its cap.
   */
  async reserve(tenant: string, now = Date.now()): Promise<string> {
    const token = `pending:${randomUUID()}`;
    if (await this.mutate(tenant, (s) => { const r = reserve(s, token, this.cap, now); return { next: r.ok ? r.set : undefined, result: r.ok }; })) return token;
    this.cache.delete(tenant); // at the cap by this instance's view: look again, fresh
    await this.reconcile(tenant);
    if (await this.mutate(tenant, (s) => { const r = reserve(s, token, this.cap, now); return { next: r.ok ? r.set : undefined, result: r.ok }; })) return token;
    throw new AgentmeshError(
      'resource_exhausted',
      `the tenant has ${this.cap} runs in progress, its cap of concurrent runs: start more when some have ended`,
      { reason: 'concurrent_runs', retryAfterSeconds: 1 },
    );
  }

  async commit(tenant: string, token: string, runId: string, sessionId?: string): Promise<void> {
    await this.mutate(tenant, (s) => ({ next: commit(s, token, runId, sessionId, Date.now()), result: undefined }));
  }

  async release(tenant: string, token: string): Promise<void> {
    await this.mutate(tenant, (s) => { const next = release(s, token); return { next: next === s ? undefined : next, result: undefined }; });
  }

  /** A run ended (its terminal event is in the journal): removes it and returns its entry, if it was there. */
  async finish(tenant: string, runId: string): Promise<ActiveEntry | undefined> {
    return this.mutate(tenant, (s) => { const f = finish(s, runId, Date.now()); return { next: f.changed ? f.set : undefined, result: f.entry }; });
  }

  /** Runs of the tenant currently counted against the cap. */
  async count(tenant: string): Promise<number> {
    return activeCount((await this.read(tenant)).set);
  }

  /** The session of an active run, if it has one (for the session history). */
  async sessionOf(tenant: string, runId: string): Promise<string | undefined> {
    return (await this.read(tenant)).set.runs[runId]?.s;
  }

  /**
   * Drops runs that ended (their last journal event is terminal) or were lost (no journal long
   * after admission). Runs when a tenant is at its cap; at most every RECONCILE_EVERY_MS.
   */
  async reconcile(tenant: string): Promise<number> {
    const now = Date.now();
    if (now - (this.reconciled.get(tenant) ?? 0) < RECONCILE_EVERY_MS) return 0;
    this.reconciled.set(tenant, now);
    if (this.reconciled.size > 10_000) this.reconciled.clear();
    const { set } = await this.read(tenant);
    const ids = Object.entries(set.runs).filter(([, e]) => !e.pending);
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
    else cur = { set: JSON.parse(dec.decode(e.value)) as ActiveSet, revision: e.revision };
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
      for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
        // the last value this instance wrote or read: right unless another instance wrote since,
        // which the compare-and-set then refuses (and the value is read again)
        const cached = this.cache.get(tenant);
        const cur = cached ?? await this.read(tenant);
        const { next, result } = change(cur.set);
        if (!next) {
          // nothing to write: only a fresh read may say so (a stale copy could refuse a free slot,
          // or miss the reservation a finishing run must leave its tombstone for)
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
        }
      }
      throw new AgentmeshError('unavailable', 'the active-run count is too contended; retry');
    });
    this.queues.set(tenant, run);
    void run.catch(() => undefined).finally(() => { if (this.queues.get(tenant) === run) this.queues.delete(tenant); });
    return run;
  }
}

import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { isTenantId, STREAMS, type AnyJournalEvent } from '#libs/contracts';
import { initialState, isTerminal, JournalDivergenceError, reduce, summaryOf, type RunState } from '#libs/engine';
import { Journal } from '#libs/journal';
import { decodeJson } from '#libs/messaging';
import { followLive } from './follow-live.js';
import type { Repositories } from './repositories.js';

export const RUN_INDEX_CHECKPOINT = 'run-index';

/** The subset of the pino logger the projector uses. */
interface ProjectorLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface RunIndexProjectorOptions {
  /** Checkpoint name (default `run-index`). */
  checkpoint?: string;
  /** Events folded before rows and the checkpoint are written (default 256). */
  batchSize?: number;
  /** Run states kept between batches (default 10 000); an evicted run is reloaded from the journal. */
  cacheSize?: number;
  /** How long catch-up waits for the next event before deciding the journal has ended (default 5 s). */
  idleMs?: number;
  logger?: ProjectorLogger;
}

export interface ProjectionReport {
  /** Journal events read. */
  events: number;
  /** Rows written (a run written in several batches counts once per batch). */
  rowsWritten: number;
  /** The checkpoint after the pass. */
  throughSeq: number;
}

const silent: ProjectorLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * The run index as a projection of the journal (AGENTMESH_JOURNAL, `run.>`): folds each run's
 * events with the engine's `reduce`, writes `summaryOf(state)` through `runs.upsert(row, lastSeq)`
 * once per batch, then advances its checkpoint. Idempotent (a row never goes back to an older
 * sequence, so replaying events changes nothing) and resumable (it starts after the checkpoint;
 * a run first met mid-way is loaded from the journal). `rebuild()` resets the checkpoint and
 * rewrites every row from the journal.
 */
export class RunIndexProjector {
  private readonly states = new Map<string, RunState>();
  private readonly name: string;
  private readonly batchSize: number;
  private readonly cacheSize: number;
  private readonly idleMs: number;
  private readonly log: ProjectorLogger;
  private journal?: Journal;
  private messages?: ConsumerMessages;
  private running?: Promise<void>;
  private stopped = false;

  constructor(private readonly nc: NatsConnection, private readonly repos: Repositories, opts: RunIndexProjectorOptions = {}) {
    this.name = opts.checkpoint ?? RUN_INDEX_CHECKPOINT;
    this.batchSize = opts.batchSize ?? 256;
    this.cacheSize = opts.cacheSize ?? 10_000;
    this.idleMs = opts.idleMs ?? 5000;
    this.log = opts.logger ?? silent;
  }

  /** Applies the journal from the checkpoint to its current end. */
  async catchUp(): Promise<ProjectionReport> {
    return this.pass({ follow: false, overwrite: false });
  }

  /** Starts over: checkpoint to 0, every row rewritten from the journal (to its end at the call). */
  async rebuild(): Promise<ProjectionReport> {
    await this.repos.checkpoints.reset(this.name);
    this.states.clear();
    return this.pass({ follow: false, overwrite: true });
  }

  /** Follows the journal live from the checkpoint until `stop()`; failures are retried. */
  start(): void {
    this.stopped = false;
    this.running = followLive(
      () => this.pass({ follow: true, overwrite: false }), () => this.stopped,
      (err) => this.log.warn({ err }, 'run index projection interrupted; resuming from its checkpoint'),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.messages?.stop();
    await this.running;
  }

  /** The checkpoint: the last journal sequence whose effects are in the index. */
  checkpoint(): Promise<number> {
    return this.repos.checkpoints.get(this.name);
  }

  private async pass(mode: { follow: boolean; overwrite: boolean }): Promise<ProjectionReport> {
    const report: ProjectionReport = { events: 0, rowsWritten: 0, throughSeq: await this.repos.checkpoints.get(this.name) };
    const jsm = await jetstreamManager(this.nc);
    const until = (await jsm.streams.info(STREAMS.journal.name)).state.last_seq;
    if (!mode.follow && until <= report.throughSeq) return report;
    const js = jetstream(this.nc, { timeout: 10_000 });
    const consumer = await js.consumers.get(STREAMS.journal.name, {
      filter_subjects: STREAMS.journal.subjects[0],
      ...(report.throughSeq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: report.throughSeq + 1 } : { deliver_policy: DeliverPolicy.All }),
    });
    const messages = await consumer.consume({ max_messages: this.batchSize * 2 });
    this.messages = messages;
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      if (mode.follow) return;
      clearTimeout(idle);
      idle = setTimeout(() => messages.stop(), this.idleMs);
    };
    arm();
    let batch: AnyJournalEvent[] = [];
    try {
      for await (const m of messages as AsyncIterable<JsMsg>) {
        arm();
        batch.push({ ...decodeJson<Omit<AnyJournalEvent, 'seq'>>(m.data), seq: m.seq } as AnyJournalEvent);
        const atEnd = !mode.follow && (m.seq >= until || m.info.pending === 0);
        if (batch.length >= this.batchSize || m.info.pending === 0 || atEnd) {
          report.rowsWritten += await this.apply(batch, mode.overwrite);
          report.events += batch.length;
          report.throughSeq = batch[batch.length - 1].seq;
          batch = [];
        }
        if (atEnd || this.stopped) break;
      }
      if (batch.length && !this.stopped) {
        report.rowsWritten += await this.apply(batch, mode.overwrite);
        report.events += batch.length;
        report.throughSeq = batch[batch.length - 1].seq;
      }
    } finally {
      clearTimeout(idle);
      messages.stop();
    }
    return report;
  }

  /** Folds a batch, writes the changed rows, then moves the checkpoint. Returns rows written. */
  private async apply(batch: AnyJournalEvent[], overwrite: boolean): Promise<number> {
    const dirty = new Map<string, RunState>();
    for (const e of batch) {
      if (!isTenantId(e.tenantId) || typeof e.runId !== 'string') {
        this.log.warn({ seq: e.seq }, 'journal event without a valid tenant or run id; skipped');
        continue;
      }
      const key = `${e.tenantId}.${e.runId}`;
      let s = this.states.get(key) ?? (e.type === 'run.created' ? initialState(e.tenantId, e.runId) : await this.load(e));
      if (e.seq > s.lastSeq) {
        try {
          s = reduce(s, e);
        } catch (err) {
          if (!(err instanceof JournalDivergenceError)) throw err;
          this.log.warn({ err, tenantId: e.tenantId, runId: e.runId, seq: e.seq }, 'journal event does not fit the run; skipped');
        }
      }
      this.states.delete(key);
      this.states.set(key, s);
      dirty.set(key, s);
    }
    let written = 0;
    const rows = [...dirty.values()];
    for (let i = 0; i < rows.length; i += 16) {
      const results = await Promise.all(rows.slice(i, i + 16).map(async (s) => {
        const row = summaryOf(s);
        if (!row) return 0;
        const runs = this.repos.forTenant(s.tenantId).runs;
        if (overwrite) { await runs.replace(row, s.lastSeq); return 1; }
        return (await runs.upsert(row, s.lastSeq)) ? 1 : 0;
      }));
      written += results.reduce((a: number, b: number) => a + b, 0);
    }
    await this.repos.checkpoints.advance(this.name, batch[batch.length - 1].seq);
    for (const [key, s] of dirty) if (isTerminal(s)) this.states.delete(key);
    while (this.states.size > this.cacheSize) this.states.delete(this.states.keys().next().value as string);
    return written;
  }

  /** A run met mid-way (after a restart or an eviction): its state from the journal (snapshot + tail). */
  private async load(e: AnyJournalEvent): Promise<RunState> {
    this.journal ??= await Journal.open(this.nc);
    return this.journal.load({ tenantId: e.tenantId, runId: e.runId });
  }
}

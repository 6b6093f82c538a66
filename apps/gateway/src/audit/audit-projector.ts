import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { isTenantId, STREAMS } from '#libs/contracts';
import { followLive, type AuditEntry, type Repositories } from '#libs/store';
import type { AuditRecord } from './chain.js';

/** The audit search projector's position in AGENTMESH_AUDIT, in `repos.checkpoints`. */
export const AUDIT_SEARCH_CHECKPOINT = 'audit-search';

/** The subset of the pino logger the projector uses. */
interface ProjectorLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface AuditProjectorOptions {
  /** Checkpoint name (default `audit-search`). */
  checkpoint?: string;
  /** The stream holding the chains (default AGENTMESH_AUDIT; tests pass another). */
  stream?: string;
  /** Records appended before the checkpoint is written (default 256). */
  batchSize?: number;
  /** How long catch-up waits for the next record before deciding the stream has ended (default 5 s). */
  idleMs?: number;
  logger?: ProjectorLogger;
}

export interface AuditProjectionReport {
  /** Stream messages read. */
  records: number;
  /** Entries stored (an entry already in the read model is not counted). */
  entriesWritten: number;
  /** The checkpoint after the pass. */
  throughSeq: number;
}

const silent: ProjectorLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * The search entry of one chain record. `detail` holds the record's details (strings as they are,
 * anything else as JSON) and `seq`, the record's chain position, so a client can fetch the record
 * itself (`?after=<seq - 1>&limit=1`) and verify it.
 */
export function auditEntryOf(r: AuditRecord): Omit<AuditEntry, 'tenantId'> {
  const detail: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.details ?? {})) detail[k] = typeof v === 'string' ? v : JSON.stringify(v);
  detail.seq = String(r.seq);
  return {
    id: r.id, at: r.at, action: r.action, actor: r.actor.id, outcome: 'succeeded',
    ...(r.target ? { resource: `${r.target.type}:${r.target.id}` } : {}),
    detail,
  };
}

/**
 * The audit search read model (`store.forTenant(t).audit`: by time and action, newest first) as a
 * projection of the audit chains on AGENTMESH_AUDIT (`audit.<tenant>`). The chain stays the
 * record of truth (hashes, verification); this is only an index over it.
 *
 * Idempotent: an entry is keyed by the record's id (a ULID), so a record applied again (redelivery,
 * a second gateway's projector, a rebuild) is stored once. Resumable: the checkpoint
 * (`audit-search`) moves after each batch is stored; a restart continues after it. `start()`/`stop()`
 * follow live (retrying every second while the store is away); `catchUp()` runs to the current end;
 * `rebuild()` resets the checkpoint and applies every record again (entries are immutable, so that
 * restores whatever is missing, e.g. after wiping the MongoDB database).
 */
export class AuditProjector {
  private readonly name: string;
  private readonly stream: string;
  private readonly batchSize: number;
  private readonly idleMs: number;
  private readonly log: ProjectorLogger;
  private messages?: ConsumerMessages;
  private running?: Promise<void>;
  private stopped = false;

  constructor(private readonly nc: NatsConnection, private readonly repos: Repositories, opts: AuditProjectorOptions = {}) {
    this.name = opts.checkpoint ?? AUDIT_SEARCH_CHECKPOINT;
    this.stream = opts.stream ?? STREAMS.audit.name;
    this.batchSize = opts.batchSize ?? 256;
    this.idleMs = opts.idleMs ?? 5000;
    this.log = opts.logger ?? silent;
  }

  /** Applies the stream from the checkpoint to its current end. */
  catchUp(): Promise<AuditProjectionReport> {
    return this.pass(false);
  }

  /** Starts over: checkpoint to 0, every record applied again (to the stream's end at the call). */
  async rebuild(): Promise<AuditProjectionReport> {
    await this.repos.checkpoints.reset(this.name);
    return this.pass(false);
  }

  /** Follows the stream live from the checkpoint until `stop()`; failures are retried. */
  start(): void {
    this.stopped = false;
    this.running = followLive(
      () => this.pass(true), () => this.stopped,
      (err) => this.log.warn({ err }, 'audit search projection interrupted; resuming from its checkpoint'),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.messages?.stop();
    await this.running;
  }

  /** The last stream sequence whose record is in the read model. */
  checkpoint(): Promise<number> {
    return this.repos.checkpoints.get(this.name);
  }

  private async pass(follow: boolean): Promise<AuditProjectionReport> {
    const report: AuditProjectionReport = { records: 0, entriesWritten: 0, throughSeq: await this.repos.checkpoints.get(this.name) };
    const jsm = await jetstreamManager(this.nc);
    const until = (await jsm.streams.info(this.stream)).state.last_seq;
    if (!follow && until <= report.throughSeq) return report;
    const consumer = await jetstream(this.nc, { timeout: 10_000 }).consumers.get(this.stream, {
      ...(report.throughSeq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: report.throughSeq + 1 } : { deliver_policy: DeliverPolicy.All }),
    });
    const messages = await consumer.consume({ max_messages: this.batchSize * 2 });
    this.messages = messages;
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      if (follow) return;
      clearTimeout(idle);
      idle = setTimeout(() => messages.stop(), this.idleMs);
    };
    arm();
    let batch: Array<{ seq: number; record: AuditRecord | null }> = [];
    const flush = async () => {
      report.entriesWritten += await this.apply(batch);
      report.records += batch.length;
      report.throughSeq = batch[batch.length - 1].seq;
      batch = [];
    };
    try {
      for await (const m of messages as AsyncIterable<JsMsg>) {
        arm();
        let record: AuditRecord | null = null;
        try { record = JSON.parse(new TextDecoder().decode(m.data)) as AuditRecord; } catch { /* unreadable: skipped (the chain verifier reports it) */ }
        batch.push({ seq: m.seq, record });
        const atEnd = !follow && (m.seq >= until || m.info.pending === 0);
        if (batch.length >= this.batchSize || m.info.pending === 0 || atEnd) await flush();
        if (atEnd || this.stopped) break;
      }
      if (batch.length && !this.stopped) await flush();
    } finally {
      clearTimeout(idle);
      messages.stop();
    }
    return report;
  }

  /** Stores a batch's entries, then moves the checkpoint. Returns the entries newly stored. */
  private async apply(batch: Array<{ seq: number; record: AuditRecord | null }>): Promise<number> {
    const entries: Array<{ tenantId: string; entry: Omit<AuditEntry, 'tenantId'> }> = [];
    for (const { seq, record: r } of batch) {
      if (!r || !isTenantId(r.tenantId) || typeof r.id !== 'string' || typeof r.action !== 'string' || !r.actor || Number.isNaN(Date.parse(r.at))) {
        this.log.warn({ seq }, 'audit record without a valid tenant, id, action, actor or time; not indexed');
        continue;
      }
      entries.push({ tenantId: r.tenantId, entry: auditEntryOf(r) });
    }
    let written = 0;
    for (let i = 0; i < entries.length; i += 16) {
      const stored = await Promise.all(entries.slice(i, i + 16).map(({ tenantId, entry }) => this.repos.forTenant(tenantId).audit.append(entry)));
      written += stored.filter(Boolean).length;
    }
    await this.repos.checkpoints.advance(this.name, batch[batch.length - 1].seq);
    return written;
  }
}

import { DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { HEADERS, STREAMS, usageSubject, type UsageEvent, type UsageGroupBy, type UsageReport } from '#libs/contracts';
import { decodeJson, encodeJson } from '#libs/messaging';
import type { Repositories } from '#libs/store';
import type { Logger } from '#libs/telemetry';

const NS = 1_000_000;

/** The usage fold's position in AGENTMESH_USAGE, in `repos.checkpoints`. */
export const USAGE_ROLLUPS_CHECKPOINT = 'usage-rollups';

type Folded = { seq: number; usage: UsageEvent };

/**
 * Metering: every settled call becomes one message on AGENTMESH_USAGE (`usage.<tenant>`, message id
 * derived from the call key, so a retried settlement publishes once), which billing systems
 * consume. Each governor folds the stream, in stream order, into the hourly rollups of the store
 * (`store.forTenant(t).usage`, libs/store: KV `am_usage_rollups` or MongoDB `usage_rollups`); each
 * rollup keeps the last folded sequence, so an event is counted once however many governors fold it
 * and whenever they restart. The fold's position is the `usage-rollups` checkpoint
 * (`store.checkpoints`). Settling costs one publish; the rollups are written by the fold, in batches.
 */
export class UsageLedger {
  private js!: JetStreamClient;
  private messages?: ConsumerMessages;
  private stopped = false;
  /** Last usage sequence folded by this process. */
  foldedSeq = 0;

  constructor(private readonly nc: NatsConnection, private readonly store: Repositories, private readonly logger: Logger) {}

  async start(replicas: number): Promise<void> {
    this.js = jetstream(this.nc, { timeout: 10_000 });
    const jsm = await jetstreamManager(this.nc);
    const cfg = {
      name: STREAMS.usage.name, subjects: [...STREAMS.usage.subjects], storage: StorageType.File, retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old, num_replicas: replicas, duplicate_window: 120_000 * NS, max_msg_size: 64 * 1024,
    };
    try {
      await jsm.streams.info(cfg.name);
    } catch (e) {
      if ((e as { name?: string }).name !== 'StreamNotFoundError') throw e;
      try { await jsm.streams.add(cfg); } catch (err) { if (!/already in use/i.test((err as Error).message)) throw err; }
    }
    const from = await this.store.checkpoints.get(USAGE_ROLLUPS_CHECKPOINT);
    const consumer = await this.js.consumers.get(STREAMS.usage.name, {
      filter_subjects: `${STREAMS.usage.subjects[0]}`,
      ...(from > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from + 1 } : { deliver_policy: DeliverPolicy.All }),
    });
    this.messages = await consumer.consume({ max_messages: 1024 });
    void this.fold(this.messages).catch((err) => { if (!this.stopped) this.logger.error({ err }, 'usage rollup stopped'); });
  }

  stop(): void {
    this.stopped = true;
    this.messages?.stop();
  }

  async publish(u: UsageEvent): Promise<void> {
    const h = natsHeaders();
    h.set(HEADERS.type, 'usage');
    h.set(HEADERS.schema, '1');
    h.set(HEADERS.tenant, u.tenantId);
    await this.js.publish(usageSubject(u.tenantId), encodeJson(u), { msgID: `usage:${u.tenantId}:${u.callKey}`, headers: h });
  }

  private async fold(messages: ConsumerMessages): Promise<void> {
    let buf: Folded[] = [];
    for await (const m of messages as AsyncIterable<JsMsg>) {
      try { buf.push({ seq: m.seq, usage: decodeJson<UsageEvent>(m.data) }); } catch { /* not ours: skip */ }
      if (m.info.pending > 0 && buf.length < 512) continue;
      const batch = buf;
      buf = [];
      await this.flush(batch, m.seq);
    }
  }

  /** Folds a batch into its tenants' rollups, retrying until it lands (the store may be briefly away). */
  private async flush(batch: Folded[], lastSeq: number): Promise<void> {
    const byTenant = new Map<string, Folded[]>();
    for (const e of batch) {
      const list = byTenant.get(e.usage.tenantId) ?? [];
      list.push(e);
      byTenant.set(e.usage.tenantId, list);
    }
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await Promise.all([...byTenant.entries()].map(async ([tenantId, events]) => {
          let repo;
          try { repo = this.store.forTenant(tenantId).usage; } catch { return; } // a malformed tenant id is not ours: skip
          await repo.apply(events);
        }));
        await this.store.checkpoints.advance(USAGE_ROLLUPS_CHECKPOINT, lastSeq);
        this.foldedSeq = lastSeq;
        return;
      } catch (err) {
        this.logger.warn({ err, attempt }, 'usage rollup write failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt)));
      }
    }
  }

  /** Usage of one tenant over the hours that start in [hour of from, to). */
  report(tenantId: string, from: Date, to: Date, groupBy?: UsageGroupBy): Promise<UsageReport> {
    return this.store.forTenant(tenantId).usage.report({ from: from.toISOString(), to: to.toISOString(), ...(groupBy ? { groupBy } : {}) });
  }
}

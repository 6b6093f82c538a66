import { DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import {
  HEADERS, STREAMS, usageSubject, type UsageEvent, type UsageGroupBy, type UsageReport, type UsageTotals,
} from '#libs/contracts';
import { decodeJson, encodeJson } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { CasBook } from './cas-book.js';
import { toMicros, toUsd } from './budget-math.js';

const NS = 1_000_000;
const HOUR_MS = 3600_000;

/** Totals with money in micro-dollars. */
interface Tally { m: number; calls: number; in: number; out: number }

/** One tenant's usage in one UTC hour. `throughSeq`: the last usage-stream sequence folded in. */
export interface HourRollup {
  tenantId: string;
  hour: string;
  throughSeq: number;
  total: Tally;
  agent: Record<string, Tally>;
  model: Record<string, Tally>;
  tool: Record<string, Tally>;
}

interface Checkpoint { seq: number }

const zero = (): Tally => ({ m: 0, calls: 0, in: 0, out: 0 });
const add = (t: Tally, u: UsageEvent): void => {
  t.m += toMicros(u.usd); t.calls += 1; t.in += u.inputTokens; t.out += u.outputTokens;
};
/** `YYYYMMDDHH` (UTC) of an instant. */
export const hourKey = (ms: number): string => new Date(Math.floor(ms / HOUR_MS) * HOUR_MS).toISOString().slice(0, 13).replace(/[-T]/g, '');

/** Folds usage events (in stream order) into an hour's rollup; events at or below `throughSeq` are already in. */
export function foldUsage(doc: HourRollup, events: ReadonlyArray<{ seq: number; u: UsageEvent }>): boolean {
  let changed = false;
  for (const { seq, u } of events) {
    if (seq <= doc.throughSeq) continue;
    add(doc.total, u);
    add((doc.agent[u.agent] ??= zero()), u);
    if (u.model) add((doc.model[u.model] ??= zero()), u);
    if (u.tool) add((doc.tool[u.tool] ??= zero()), u);
    doc.throughSeq = seq;
    changed = true;
  }
  return changed;
}

const totalsOf = (t: Tally): UsageTotals => ({ usd: toUsd(t.m), calls: t.calls, inputTokens: t.in, outputTokens: t.out });

/** Sums hourly rollups into a report. */
export function reportOf(tenantId: string, from: string, to: string, groupBy: UsageGroupBy | undefined, hours: HourRollup[]): UsageReport {
  const total = zero();
  const groups = new Map<string, Tally>();
  for (const h of hours) {
    total.m += h.total.m; total.calls += h.total.calls; total.in += h.total.in; total.out += h.total.out;
    if (!groupBy) continue;
    for (const [k, t] of Object.entries(h[groupBy])) {
      const g = groups.get(k) ?? zero();
      g.m += t.m; g.calls += t.calls; g.in += t.in; g.out += t.out;
      groups.set(k, g);
    }
  }
  return {
    tenantId, from, to, granularity: 'hour', groupBy: groupBy ?? null, totals: totalsOf(total),
    groups: [...groups.entries()].map(([key, t]) => ({ key, ...totalsOf(t) })).sort((a, b) => b.usd - a.usd || a.key.localeCompare(b.key)),
  };
}

/**
 * Metering: every settled call becomes one message on AGENTMESH_USAGE (`usage.<tenant>`, message id
 * derived from the call key, so a retried settlement publishes once), which billing systems
 * consume. Each governor folds the stream into hourly rollups per tenant in KV, in stream order,
 * with the last folded sequence in each rollup, so an event is counted once however many
 * governors fold it and whenever they restart.
 */
export class UsageLedger {
  private js!: JetStreamClient;
  private rollups!: CasBook<HourRollup>;
  private checkpoints!: CasBook<Checkpoint>;
  private messages?: ConsumerMessages;
  private stopped = false;
  /** Last usage sequence folded by this process. */
  foldedSeq = 0;

  constructor(private readonly nc: NatsConnection, private readonly kv: KV, private readonly logger: Logger) {}

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
    this.rollups = new CasBook<HourRollup>(this.kv, (tenantId, parts) => ({
      tenantId, hour: parts[1], throughSeq: 0, total: zero(), agent: {}, model: {}, tool: {},
    }));
    this.checkpoints = new CasBook<Checkpoint>(this.kv, () => ({ seq: 0 }));
    const from = (await this.checkpoints.read('_meta', ['checkpoint'])).doc.seq;
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
    let buf: Array<{ seq: number; u: UsageEvent }> = [];
    for await (const m of messages as AsyncIterable<JsMsg>) {
      try { buf.push({ seq: m.seq, u: decodeJson<UsageEvent>(m.data) }); } catch { /* not ours: skip */ }
      if (m.info.pending > 0 && buf.length < 512) continue;
      const batch = buf;
      buf = [];
      await this.flush(batch, m.seq);
    }
  }

  /** Folds a batch into its hours, retrying until it lands (the store may be briefly away). */
  private async flush(batch: Array<{ seq: number; u: UsageEvent }>, lastSeq: number): Promise<void> {
    const byHour = new Map<string, { tenantId: string; hour: string; events: typeof batch }>();
    for (const e of batch) {
      const hour = hourKey(Date.parse(e.u.at));
      const k = `${e.u.tenantId}/${hour}`;
      const g = byHour.get(k) ?? { tenantId: e.u.tenantId, hour, events: [] };
      g.events.push(e);
      byHour.set(k, g);
    }
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await Promise.all([...byHour.values()].map((g) =>
          this.rollups.apply(g.tenantId, ['h', g.hour], (doc) => ({ result: null, changed: foldUsage(doc, g.events) }))));
        await this.checkpoints.apply('_meta', ['checkpoint'], (doc) => (doc.seq >= lastSeq ? { result: null, changed: false } : ((doc.seq = lastSeq), { result: null, changed: true })));
        this.foldedSeq = lastSeq;
        return;
      } catch (err) {
        this.logger.warn({ err, attempt }, 'usage rollup write failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt)));
      }
    }
  }

  /** Usage of one tenant over the hours that start in [from, to). */
  async report(tenantId: string, from: Date, to: Date, groupBy?: UsageGroupBy): Promise<UsageReport> {
    const lo = hourKey(from.getTime());
    const hiExclusive = hourKey(to.getTime() + HOUR_MS - 1);
    const keys: string[] = [];
    for await (const k of await this.kv.keys(`${this.rollups.key(tenantId, ['h'])}.*`)) {
      const hour = k.slice(k.lastIndexOf('.') + 1);
      if (hour >= lo && hour < hiExclusive) keys.push(hour);
    }
    const hours = await Promise.all(keys.map(async (h) => (await this.rollups.read(tenantId, ['h', h])).doc));
    return reportOf(tenantId, from.toISOString(), to.toISOString(), groupBy, hours);
  }
}

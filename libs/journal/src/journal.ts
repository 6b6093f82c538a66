import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import {
  BUCKETS, HEADERS, JOURNAL_SCHEMA_VERSION, STREAMS, isTerminalEventType, journalSubject, runKeyString,
  type AnyJournalEvent, type AnyNewJournalEvent, type RunKey,
} from '#libs/contracts';
import { foldEvents, initialState, type RunState } from '#libs/engine';
import { decodeJson, encodeJson, JetStreamPublishError, openBucket, publisherFor, WRONG_LAST_SEQUENCE, type JetStreamPublisher } from '#libs/messaging';
import { currentTraceparent } from '#libs/telemetry';

/** Another writer appended to this run first: the caller's view is stale (fencing). */
export class StaleWriterError extends Error {
  override readonly name = 'StaleWriterError';
  readonly code = 'stale_writer';
  constructor(readonly key: RunKey, readonly expectedSeq: number, opts?: { cause?: unknown }) {
    super(`run ${key.runId}: journal moved past seq ${expectedSeq}`, opts);
  }
}


function toEvent(m: { seq: number; data: Uint8Array }): AnyJournalEvent {
  return { ...decodeJson<Omit<AnyJournalEvent, 'seq'>>(m.data), seq: m.seq } as AnyJournalEvent;
}

/**
 * The run journal: one JetStream subject per run, `run.<tenant>.<runId>`, JSON payloads. The
 * source of truth for every run; state is a fold over it.
 */
export class Journal {
  private constructor(
    private readonly js: JetStreamClient,
    private readonly publisher: JetStreamPublisher,
    private readonly jsm: JetStreamManager,
    private readonly snapshots: KV,
  ) {}

  static async open(nc: NatsConnection): Promise<Journal> {
    return new Journal(jetstream(nc, { timeout: 10_000 }), publisherFor(nc), await jetstreamManager(nc), await openBucket(nc, BUCKETS.snapshots));
  }

  /**
   * Appends one event if the run's last journal sequence is still `expectedLastSeq` (0: the run
   * has no events). Returns the event's sequence. A publish retried after a lost ack is
   * recognised by its message id and returns the original sequence.
   */
  async append(e: AnyNewJournalEvent, expectedLastSeq: number, position: number): Promise<number> {
    const h = natsHeaders();
    h.set(HEADERS.type, e.type);
    h.set(HEADERS.schema, String(JOURNAL_SCHEMA_VERSION));
    h.set(HEADERS.tenant, e.tenantId);
    const tp = currentTraceparent();
    if (tp) h.set(HEADERS.traceparent, tp);
    h.set('Nats-Msg-Id', `${e.runId}:${position}`);
    h.set('Nats-Expected-Last-Subject-Sequence', String(expectedLastSeq));
    try {
      const ack = await this.publisher.publish(journalSubject(e), encodeJson(e), h);
      return ack.seq;
    } catch (err) {
      if (err instanceof JetStreamPublishError && err.apiCode === WRONG_LAST_SEQUENCE) throw new StaleWriterError(e, expectedLastSeq, { cause: err });
      throw err;
    }
  }

  /** The sequence of the run's last event, or 0. */
  async lastSeq(key: RunKey): Promise<number> {
    try {
      const m = await this.jsm.direct.getMessage(STREAMS.journal.name, { last_by_subj: journalSubject(key) });
      return m?.seq ?? 0;
    } catch (e) {
      if ((e as Error).message?.includes('no message found') || (e as { code?: number }).code === 404) return 0;
      throw e;
    }
  }

  /** Every event of a run after `afterSeq`, in order. */
  async read(key: RunKey, afterSeq = 0): Promise<AnyJournalEvent[]> {
    const last = await this.lastSeq(key);
    if (last <= afterSeq) return [];
    const out: AnyJournalEvent[] = [];
    for await (const e of this.iterate(key, afterSeq, { untilSeq: last })) out.push(e);
    return out;
  }

  /**
   * Streams a run's events after `afterSeq`: first what is stored, then new events as they are
   * appended. Ends after the terminal event, at `untilSeq`, or when `signal` aborts.
   */
  async *iterate(key: RunKey, afterSeq: number, opts: { untilSeq?: number; signal?: AbortSignal } = {}): AsyncGenerator<AnyJournalEvent> {
    const consumer = await this.js.consumers.get(STREAMS.journal.name, {
      filter_subjects: journalSubject(key),
      ...(afterSeq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: afterSeq + 1 } : { deliver_policy: DeliverPolicy.All }),
      inactive_threshold: 30_000_000_000,
    });
    const messages = await consumer.consume({ max_messages: 256 });
    const stop = () => messages.stop();
    opts.signal?.addEventListener('abort', stop, { once: true });
    try {
      if (opts.signal?.aborted) return;
      for await (const m of messages as AsyncIterable<JsMsg>) {
        const e = toEvent(m);
        yield e;
        if (isTerminalEventType(e.type) || (opts.untilSeq !== undefined && e.seq >= opts.untilSeq)) break;
      }
    } finally {
      opts.signal?.removeEventListener('abort', stop);
      messages.stop();
    }
  }

  /** A run's state: the latest snapshot plus the events after it. */
  async load(key: RunKey): Promise<RunState> {
    let state = initialState(key.tenantId, key.runId);
    const snap = await this.snapshots.get(runKeyString(key));
    if (snap && snap.operation === 'PUT') state = snap.json<RunState>();
    const tail = await this.read(key, state.lastSeq);
    return foldEvents(state, tail);
  }

  async saveSnapshot(state: RunState): Promise<void> {
    await this.snapshots.put(runKeyString(state), encodeJson(state));
  }
}

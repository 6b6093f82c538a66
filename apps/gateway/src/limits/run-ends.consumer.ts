import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { jetstream, jetstreamManager, type ConsumerMessages, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { HEADERS, isTerminalEventType, JOURNAL_WATCHERS, STREAMS, type AnyJournalEvent, type JsonValue, type RunStatus } from '#libs/contracts';
import { LOGGER, NATS } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { SessionsService } from '../tenants/sessions.service.js';
import { ActiveRuns } from './active-runs.service.js';

const STATUS: Record<string, RunStatus> = { 'run.completed': 'completed', 'run.failed': 'failed', 'run.cancelled': 'cancelled' };
/** Acknowledge (cumulatively, AckAll) after this many skipped events, or this long after the last one. */
const ACK_EVERY = 256;
const ACK_AFTER_MS = 200;

/**
 * The gateways' shared consumer of terminal journal events (JOURNAL_WATCHERS.gatewayRunEnds:
 * headers only, from when it was created, AckAll). For `run.completed | run.failed |
 * run.cancelled` it removes the run from its tenant's active set (the concurrent-run cap) and
 * records the end in the run's session; every other event is skipped on its `am-type` header, so
 * its cost per journal event is one small delivery and no payload.
 *
 * Acknowledgement is cumulative and batched; a gateway that dies with unacknowledged events gets
 * them redelivered to another instance (finishing a run twice changes nothing). What is lost in
 * the corner cases heals elsewhere: the active set is reconciled against the journal at the cap,
 * and a session read asks the journal about runs not yet recorded as ended.
 */
@Injectable()
export class RunEndsConsumer implements OnApplicationBootstrap, OnModuleDestroy {
  private messages?: ConsumerMessages;
  private jsm!: JetStreamManager;
  private unacked?: JsMsg;
  private skipped = 0;
  private timer?: NodeJS.Timeout;
  private loop?: Promise<void>;
  private stopping = false;

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly active: ActiveRuns,
    private readonly sessions: SessionsService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const w = JOURNAL_WATCHERS.gatewayRunEnds;
    this.jsm = await jetstreamManager(this.nc);
    const consumer = await jetstream(this.nc).consumers.get(w.stream, w.durable);
    this.messages = await consumer.consume({ max_messages: 1024 });
    this.loop = (async () => {
      for await (const m of this.messages!) await this.onEvent(m);
    })().catch((err: unknown) => {
      if (!this.stopping) this.logger.error({ err }, 'the run-ends consumer stopped');
    });
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    this.messages?.stop();
    await this.loop;
    this.flush();
  }

  private async onEvent(m: JsMsg): Promise<void> {
    const type = m.headers?.get(HEADERS.type) ?? '';
    if (isTerminalEventType(type)) {
      try {
        await this.ended(m, type);
      } catch (err) {
        this.logger.warn({ err, subject: m.subject }, 'could not record the end of a run; the journal will be asked again later');
      }
      this.unacked = m;
      this.flush();
      return;
    }
    this.unacked = m;
    if (++this.skipped >= ACK_EVERY) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => { this.timer = undefined; this.flush(); }, ACK_AFTER_MS);
      this.timer.unref();
    }
  }

  private flush(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    const m = this.unacked;
    this.unacked = undefined;
    this.skipped = 0;
    if (m) m.ack();
  }

  private async ended(m: JsMsg, type: string): Promise<void> {
    const [, tenant, runId] = m.subject.split('.');
    if (!tenant || !runId) return;
    const entry = await this.active.finish(tenant, runId);
    if (!entry?.s) return;
    // headers only: the terminal event's payload (output or error) by its stream sequence
    const stored = await this.jsm.direct.getMessage(STREAMS.journal.name, { seq: m.info.streamSequence });
    const e = stored ? (stored.json() as AnyJournalEvent) : undefined;
    const data = (e?.data ?? {}) as { output?: JsonValue; error?: { code: string; message: string } };
    await this.sessions.recordEnd(tenant, entry.s, runId, {
      status: STATUS[type], output: data.output ?? null, error: data.error ?? null, at: e?.at ?? new Date().toISOString(),
    });
  }
}

import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { HEADERS, usageSubject, type UsageEvent } from '#libs/contracts';
import { encodeJson, publisherFor } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';

/**
 * Usage events of calls without a reservation, published to AGENTMESH_USAGE like the
 * cost-governor's (`usage.<tenant>`, headers am-type/am-schema/am-tenant, message id
 * `usage:<tenant>:<callKey>`), in batches: every `everyMs` the queued events go out together, so
 * the NATS client writes them in one go instead of one socket write per call. A failed publish is
 * retried with the next batch (the message id makes a repeat harmless).
 */
export class UsageBatcher {
  private queue: UsageEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<void> | undefined;
  private failures = 0;

  constructor(private readonly nc: NatsConnection, private readonly logger: Logger, private readonly everyMs = 50, private readonly maxBatch = 512) {}

  add(event: UsageEvent): void {
    this.queue.push(event);
    if (this.queue.length >= this.maxBatch) {
      void this.flush();
      return;
    }
    if (this.timer === undefined) {
      this.timer = setTimeout(() => void this.flush(), this.everyMs);
      this.timer.unref();
    }
  }

  /** Publishes what is queued and waits for the acknowledgements. */
  async flush(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.inflight) await this.inflight;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.inflight = this.publish(batch).finally(() => {
      this.inflight = undefined;
    });
    await this.inflight;
  }

  private async publish(batch: UsageEvent[]): Promise<void> {
    const pub = publisherFor(this.nc);
    const results = await Promise.allSettled(batch.map((u) => {
      const h = natsHeaders();
      h.set(HEADERS.type, 'usage');
      h.set(HEADERS.schema, '1');
      h.set(HEADERS.tenant, u.tenantId);
      h.set('Nats-Msg-Id', `usage:${u.tenantId}:${u.callKey}`);
      return pub.publish(usageSubject(u.tenantId), encodeJson(u), h);
    }));
    const failed = batch.filter((_, i) => results[i].status === 'rejected');
    if (failed.length === 0) {
      this.failures = 0;
      return;
    }
    this.failures++;
    if (this.failures === 1 || this.failures % 100 === 0) {
      const err = (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason as unknown;
      this.logger.warn({ err, events: failed.length }, 'could not publish usage events; retrying');
    }
    // keep them for the next batch, unless the backlog grows past reason (the store is away for long)
    if (this.queue.length < 100_000) this.queue.unshift(...failed);
    if (this.timer === undefined) {
      this.timer = setTimeout(() => void this.flush(), Math.min(5000, this.everyMs * 2 ** Math.min(this.failures, 6)));
      this.timer.unref();
    }
  }
}

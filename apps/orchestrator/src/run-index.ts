import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, type RunSummary } from '#libs/contracts';
import { summaryOf, type RunState } from '#libs/engine';
import { NATS, openBucket } from '#libs/messaging';
import { KvDocuments } from '#libs/store';

/** Writes the run index on status transitions (not on every step). Rebuildable from the journal. */
@Injectable()
export class RunIndexWriter {
  private docs?: KvDocuments<RunSummary>;
  constructor(@Inject(NATS) private readonly nc: NatsConnection) {}

  async write(s: RunState): Promise<void> {
    const entry = summaryOf(s);
    if (!entry) return;
    this.docs ??= new KvDocuments(await openBucket(this.nc, BUCKETS.runIndex));
    await this.docs.put(s.tenantId, [s.runId], entry);
  }
}

import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { summaryOf, type RunState } from '#libs/engine';
import { LOGGER, NATS } from '#libs/messaging';
import { RunIndexProjector, STORE, type Repositories } from '#libs/store';
import type { Logger } from '#libs/telemetry';

/**
 * Keeps the run index read model (libs/store RunIndexRepository) current. Rebuildable from the
 * journal (scripts/rebuild-read-models.mjs).
 *
 * - KV backend (embedded default): the engine writes a run's row on its status transitions (not on
 *   every step), fenced on the run's journal sequence, so a late write never goes back.
 * - MongoDB backend: the RunIndexProjector follows the journal from its checkpoint (idempotent,
 *   resumable) and writes every run's row once per batch; the engine's writes are skipped. Each
 *   orchestrator instance runs one projector; extra instances write the same rows at the same
 *   sequences (no effect) and advance the same checkpoint (never backwards).
 */
@Injectable()
export class RunIndexWriter implements OnApplicationBootstrap, OnModuleDestroy {
  private projector?: RunIndexProjector;

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(STORE) private readonly store: Repositories,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    if (this.store.backend !== 'mongo') return;
    this.projector = new RunIndexProjector(this.nc, this.store, { logger: this.logger });
    this.projector.start();
    this.logger.info({}, 'run index projector following the journal (MongoDB store)');
  }

  async onModuleDestroy(): Promise<void> {
    await this.projector?.stop();
  }

  async write(s: RunState): Promise<void> {
    if (this.projector) return;
    const entry = summaryOf(s);
    if (!entry) return;
    await this.store.forTenant(s.tenantId).runs.upsert(entry, s.lastSeq);
  }
}

import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { LOGGER, NATS } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { AgentsService } from '../agents/agents.service.js';
import { RunsService, type RunView, type StartRunBody } from '../runs/runs.service.js';
import { SessionsService } from '../tenants/sessions.service.js';
import { ActiveRuns } from '#libs/limits';
import { AgentmeshError } from '#libs/contracts';
import { limitMetrics } from './metrics.js';

/**
 * RunsService with the tenant's admission limits around `start` (REST and gRPC both start runs
 * through it; it is provided under the RunsService token):
 *
 * 1. reserve a slot of the tenant's concurrent-run cap (429 `concurrent_runs` at the cap);
 * 2. admit the run as RunsService does (admission record, start command);
 * 3. commit the slot to the new run, or give it back when nothing new started (an error, or the
 *    same Idempotency-Key and body again);
 * 4. record the run in its session's history, when it has a session (never fails the run).
 */
@Injectable()
export class AdmittingRunsService extends RunsService {
  constructor(
    @Inject(NATS) nc: NatsConnection,
    agents: AgentsService,
    private readonly active: ActiveRuns,
    private readonly sessions: SessionsService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    super(nc, agents);
  }

  override async start(tenantId: string, body: StartRunBody, idempotencyKey: string | undefined): Promise<{ run: RunView; created: boolean }> {
    const token = await this.active.reserve(tenantId).catch((err: unknown) => {
      if (err instanceof AgentmeshError && err.code === 'resource_exhausted') limitMetrics.refusals.inc({ tenant: tenantId, reason: 'concurrent_runs' });
      throw err;
    });
    let result: { run: RunView; created: boolean };
    try {
      result = await super.start(tenantId, body, idempotencyKey);
    } catch (err) {
      await this.active.release(tenantId, token).catch((e: unknown) => this.logger.warn({ err: e, tenantId }, 'could not release a run slot; it expires on its own'));
      throw err;
    }
    if (!result.created) {
      await this.active.release(tenantId, token).catch((e: unknown) => this.logger.warn({ err: e, tenantId }, 'could not release a run slot; it expires on its own'));
      return result;
    }
    const { run } = result;
    await this.active.commit(tenantId, token, run.id, body.sessionId)
      .catch((e: unknown) => this.logger.warn({ err: e, tenantId, runId: run.id }, 'could not count an admitted run against the cap'));
    if (body.sessionId) {
      await this.sessions.recordAdmission(tenantId, body.sessionId, { id: run.id, agent: run.agent, agentVersion: run.agentVersion, createdAt: run.createdAt }, body.input);
    }
    return result;
  }
}

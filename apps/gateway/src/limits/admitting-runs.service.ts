import { Inject, Injectable } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { LOGGER, NATS } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { AgentsService } from '../agents/agents.service.js';
import { RunsService, type RunView, type StartRunBody } from '../runs/runs.service.js';
import { SessionsService } from '../tenants/sessions.service.js';
import { AgentmeshError } from '#libs/contracts';
import { ActiveRuns } from '#libs/limits';
import { limitMetrics } from './metrics.js';

/**
 * RunsService with the tenant's concurrent-run cap around admission (REST and gRPC both start runs
 * through it; it is provided under the RunsService token): the new run's id enters the tenant's
 * active set before its admission is written and its start command published (429
 * `concurrent_runs` at the cap), and leaves it again if that fails; the orchestrator removes it
 * when the run ends. A run started with a session is recorded in the session's history (never
 * fails the run).
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

  protected override async admitSlot(tenantId: string, runId: string, sessionId: string | undefined): Promise<void> {
    try {
      await this.active.admit(tenantId, runId, sessionId);
    } catch (err) {
      if (err instanceof AgentmeshError && err.code === 'resource_exhausted') limitMetrics.refusals.inc({ tenant: tenantId, reason: 'concurrent_runs' });
      throw err;
    }
  }

  protected override async releaseSlot(tenantId: string, runId: string): Promise<void> {
    await this.active.release(tenantId, runId).catch((err: unknown) => this.logger.warn({ err, tenantId, runId }, 'could not release a run slot; reconciliation drops it'));
  }

  override async start(tenantId: string, body: StartRunBody, idempotencyKey: string | undefined): Promise<{ run: RunView; created: boolean }> {
    const result = await super.start(tenantId, body, idempotencyKey);
    if (result.created && body.sessionId) {
      const { run } = result;
      await this.sessions.recordAdmission(tenantId, body.sessionId, { id: run.id, agent: run.agent, agentVersion: run.agentVersion, createdAt: run.createdAt }, body.input);
    }
    return result;
  }
}

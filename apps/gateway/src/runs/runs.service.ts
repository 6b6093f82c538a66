import { createHash } from 'node:crypto';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AgentmeshError, BUCKETS, conflict, digestOf, invalid, isRunId, newUlid, notFound,
  type AnyJournalEvent, type Cost, type JsonValue, type RunError, type RunStatus, type RunSummary,
} from '#libs/contracts';
import { isTerminal, type RunState } from '#libs/engine';
import { Journal } from '#libs/journal';
import { CommandBus, NATS, openBucket } from '#libs/messaging';
import { KvDocuments, STORE, type Repositories } from '#libs/store';
import { AgentsService } from '../agents/agents.service.js';

/** The gateway's record that it admitted a run (written before the start command). */
interface Admission {
  id: string;
  tenantId: string;
  agent: string;
  agentVersion: string;
  sessionId?: string;
  createdAt: string;
}

interface IdempotencyRecord {
  runId: string;
  bodyHash: string;
  createdAt: string;
}

/** A run as the API shows it. */
export interface RunView {
  id: string;
  agent: string;
  agentVersion: string;
  sessionId: string | null;
  status: RunStatus;
  output: JsonValue | null;
  error: RunError | null;
  steps: number;
  cost: Cost;
  metadata?: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export interface StartRunBody {
  agent: string;
  input?: JsonValue;
  sessionId?: string;
  metadata?: Record<string, string>;
}

const ZERO: Cost = { usd: 0, inputTokens: 0, outputTokens: 0 };

function viewOf(s: RunState, a: Admission): RunView {
  return {
    id: a.id, agent: a.agent, agentVersion: a.agentVersion, sessionId: a.sessionId ?? null,
    status: s.status, output: s.output, error: s.error, steps: s.step, cost: s.cost,
    ...(s.metadata ? { metadata: s.metadata } : {}),
    createdAt: s.createdAt ?? a.createdAt, updatedAt: s.updatedAt ?? a.createdAt,
  };
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * Run admission and reads. Starting a run writes an admission record (and a `queued` row of the
 * run index) and publishes the start command (message id = run id, so a retry never starts two).
 * A run's reads fold the journal; listings read the run index (libs/store RunIndexRepository: KV
 * or MongoDB), which the orchestrator keeps current (its writer on KV, the journal projector on
 * MongoDB).
 */
@Injectable()
export class RunsService implements OnModuleInit {
  private journal!: Journal;
  private bus!: CommandBus;
  private admissions!: KvDocuments<Admission>;
  private idempotency!: KvDocuments<IdempotencyRecord>;
  /** Property-injected so that subclasses (AdmittingRunsService) keep their constructors. */
  @Inject(STORE) protected readonly store!: Repositories;

  constructor(@Inject(NATS) private readonly nc: NatsConnection, private readonly agents: AgentsService) {}

  async onModuleInit(): Promise<void> {
    this.journal = await Journal.open(this.nc);
    this.bus = new CommandBus(this.nc);
    const adm = await openBucket(this.nc, BUCKETS.admissions);
    this.admissions = new KvDocuments(adm);
    this.idempotency = new KvDocuments(adm);
  }

  async start(tenantId: string, body: StartRunBody, idempotencyKey: string | undefined): Promise<{ run: RunView; created: boolean }> {
    const agent = await this.agents.resolve(tenantId, body.agent);
    if (!agent) throw invalid(`agent "${body.agent}" is not defined`, [{ field: '/agent', message: 'no such agent' }]);
    const runId = `run_${newUlid()}`;
    const createdAt = new Date().toISOString();
    if (idempotencyKey !== undefined) {
      if (!IDEMPOTENCY_KEY.test(idempotencyKey)) throw invalid('Idempotency-Key must be 1-255 visible ASCII characters', [{ field: 'Idempotency-Key', message: 'is malformed' }]);
      const bodyHash = digestOf(body);
      const keyHash = createHash('sha256').update(idempotencyKey).digest('hex');
      if (!(await this.idempotency.create(tenantId, ['idem', keyHash], { runId, bodyHash, createdAt }))) {
        const prior = await this.idempotency.get(tenantId, 'idem', keyHash);
        if (!prior) throw new AgentmeshError('unavailable', 'idempotency record vanished; retry');
        if (prior.bodyHash !== bodyHash) throw conflict('this Idempotency-Key was used with a different request body', 'idempotency_key_reused');
        const adm = await this.admissions.get(tenantId, 'run', prior.runId);
        if (adm) {
          await this.publishStart(tenantId, adm, body, agent); // completes a start interrupted after admission
          return { run: await this.get(tenantId, prior.runId), created: false };
        }
        return this.admit(tenantId, prior.runId, prior.createdAt, body, agent);
      }
    }
    return this.admit(tenantId, runId, createdAt, body, agent);
  }

  /** Counts a run about to be admitted against its tenant's limits (AdmittingRunsService: the concurrent-run cap). */
  protected async admitSlot(_tenantId: string, _runId: string, _sessionId: string | undefined): Promise<void> {}

  /** Gives back what admitSlot took, when the admission failed. Never throws. */
  protected async releaseSlot(_tenantId: string, _runId: string): Promise<void> {}

  private async admit(tenantId: string, runId: string, createdAt: string, body: StartRunBody, agent: NonNullable<Awaited<ReturnType<AgentsService['resolve']>>>) {
    const adm: Admission = {
      id: runId, tenantId, agent: agent.name, agentVersion: agent.version, createdAt,
      ...(body.sessionId ? { sessionId: body.sessionId } : {}),
    };
    // the run is listed (queued) from its admission on; the row is written at journal sequence 0,
    // so it never replaces a row the orchestrator (or the projector) already wrote
    const queued: RunSummary = {
      id: runId, tenantId, agent: agent.name, agentVersion: agent.version, ...(body.sessionId ? { sessionId: body.sessionId } : {}),
      status: 'queued', steps: 0, createdAt, updatedAt: createdAt,
    };
    // counted against the tenant's limits before anything of it exists (429 here changes nothing)
    await this.admitSlot(tenantId, runId, body.sessionId);
    try {
      await Promise.all([this.admissions.put(tenantId, ['run', runId], adm), this.store.forTenant(tenantId).runs.upsert(queued, 0)]);
      await this.publishStart(tenantId, adm, body, agent);
    } catch (err) {
      await this.releaseSlot(tenantId, runId);
      throw err;
    }
    return {
      run: { id: runId, agent: agent.name, agentVersion: agent.version, sessionId: body.sessionId ?? null, status: 'queued' as const, output: null, error: null, steps: 0, cost: ZERO, ...(body.metadata ? { metadata: body.metadata } : {}), createdAt, updatedAt: createdAt },
      created: true,
    };
  }

  private async publishStart(tenantId: string, adm: Admission, body: StartRunBody, agent: NonNullable<Awaited<ReturnType<AgentsService['resolve']>>>) {
    const { tenantId: _t, digest: _d, createdAt: _c, ...spec } = agent;
    await this.bus.send('run.start', {
      tenantId, runId: adm.id, agent: spec, input: body.input ?? null,
      ...(body.sessionId ? { sessionId: body.sessionId } : {}),
      ...(body.metadata ? { metadata: body.metadata } : {}),
    }, adm.id);
  }

  private async admission(tenantId: string, runId: string): Promise<Admission> {
    const adm = isRunId(runId) ? await this.admissions.get(tenantId, 'run', runId) : null;
    if (!adm) throw notFound(`run ${runId}`);
    return adm;
  }

  async get(tenantId: string, runId: string): Promise<RunView> {
    const adm = await this.admission(tenantId, runId);
    return viewOf(await this.journal.load({ tenantId, runId }), adm);
  }

  /** Newest first; the cursor is the last run id of the previous page. */
  async list(tenantId: string, q: { status?: string; agent?: string; limit: number; cursor?: string }): Promise<{ runs: RunSummary[]; nextCursor: string | null }> {
    const page = await this.store.forTenant(tenantId).runs.list({
      limit: q.limit,
      ...(q.status ? { status: q.status as RunStatus } : {}),
      ...(q.agent ? { agent: q.agent } : {}),
      ...(q.cursor ? { cursor: q.cursor } : {}),
    });
    return { runs: page.items, nextCursor: page.nextCursor };
  }

  async cancel(tenantId: string, runId: string, reason: string | undefined): Promise<RunView> {
    const view = await this.get(tenantId, runId);
    if (view.status === 'completed' || view.status === 'failed' || view.status === 'cancelled') {
      throw conflict(`run ${runId} already ended (${view.status})`, 'run_ended');
    }
    await this.bus.send('run.cancel', { tenantId, runId, ...(reason ? { reason } : {}) }, `cancel:${runId}`);
    return view;
  }

  /** The run's journal after `afterSeq`, live until the terminal event or `signal`. */
  async events(tenantId: string, runId: string, afterSeq: number, signal: AbortSignal): Promise<AsyncIterable<AnyJournalEvent>> {
    await this.admission(tenantId, runId);
    const key = { tenantId, runId };
    const last = await this.journal.lastSeq(key);
    if (last > 0 && last <= afterSeq) {
      // nothing new is stored; if the run has ended nothing ever will be
      const s = await this.journal.load(key);
      if (isTerminal(s)) return (async function* () {})();
    }
    return this.journal.iterate(key, afterSeq, { signal });
  }
}

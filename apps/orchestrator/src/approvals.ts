import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Gauge } from 'prom-client';
import { BUCKETS, canonicalJson, type ApprovalRecord } from '#libs/contracts';
import { isTerminal, type RunState } from '#libs/engine';
import { decodeJson, LOGGER, NATS, openBucket } from '#libs/messaging';
import { KvDocuments } from '#libs/store';
import { registry, type Logger } from '#libs/telemetry';

/** Waiting approvals per tenant, from the read model (every orchestrator replica reports the same value). */
const pendingGauge = new Gauge({
  name: 'agentmesh_approvals_pending', help: 'Approvals waiting for a decision', labelNames: ['tenant'], registers: [registry],
});

/**
 * The approval of a run as the read model shows it: a pure projection of the run state. A run
 * that ended while its approval was pending (cancelled) shows it `expired`: it can no longer be
 * decided.
 */
export function approvalRecordOf(s: RunState): ApprovalRecord | null {
  const a = s.approval;
  if (!a) return null;
  const closed = a.status === 'pending' && isTerminal(s);
  return {
    id: a.approvalId, tenantId: s.tenantId, runId: s.runId, step: a.step, callKey: a.callKey,
    tool: a.tool, version: a.version, args: a.args, argsHash: a.argsHash, riskTier: a.riskTier,
    status: closed ? 'expired' : a.status, createdAt: a.requestedAt, expiresAt: a.expiresAt,
    ...(closed ? { decidedAt: s.updatedAt ?? a.requestedAt, reason: `the run ended (${s.status}) before a decision` } : {}),
    ...(a.decidedAt ? { decidedAt: a.decidedAt } : {}),
    ...(a.by ? { decidedBy: a.by } : {}),
    ...(a.reason !== undefined ? { reason: a.reason } : {}),
  };
}

/**
 * Keeps the approvals read model (KV `am_approvals`, `<tenant>.<approvalId>`) in step with the
 * journal: written when a run's approval changes, and again whenever a run is recovered (a write
 * lost in a crash is repaired by the redelivered command). Also feeds agentmesh_approvals_pending
 * from a watch of the bucket.
 */
@Injectable()
export class ApprovalProjection implements OnModuleInit, OnModuleDestroy {
  private docs!: KvDocuments<ApprovalRecord>;
  private watch?: { stop(): void };
  /** KV key → tenant of each pending approval. */
  private readonly pending = new Map<string, string>();
  private readonly counts = new Map<string, number>();

  constructor(@Inject(NATS) private readonly nc: NatsConnection, @Inject(LOGGER) private readonly logger: Logger) {}

  async onModuleInit(): Promise<void> {
    const kv = await openBucket(this.nc, BUCKETS.approvals);
    this.docs = new KvDocuments(kv);
    const w = await kv.watch({ key: '>' });
    this.watch = w;
    void (async () => {
      for await (const e of w) this.seen(e);
    })().catch((err) => this.logger.error({ err }, 'approvals watch ended'));
  }

  onModuleDestroy(): void {
    this.watch?.stop();
  }

  /** Writes the run's approval when it differs from `before` (always when `force`). */
  async sync(before: RunState | null, after: RunState, force: boolean): Promise<void> {
    const rec = approvalRecordOf(after);
    if (!rec) return;
    if (!force && before) {
      const prev = approvalRecordOf(before);
      if (prev && canonicalJson(prev) === canonicalJson(rec)) return;
    }
    await this.docs.put(rec.tenantId, [rec.id], rec);
    if (rec.status !== 'pending') this.logger.info({ runId: rec.runId, approvalId: rec.id, status: rec.status, by: rec.decidedBy }, 'approval closed');
  }

  private seen(e: KvWatchEntry): void {
    const tenant = e.key.split('.')[0];
    let isPending = false;
    if (e.operation === 'PUT' && e.length > 0) {
      try { isPending = decodeJson<ApprovalRecord>(e.value).status === 'pending'; } catch { isPending = false; }
    }
    const was = this.pending.has(e.key);
    if (was === isPending) return;
    if (isPending) this.pending.set(e.key, tenant); else this.pending.delete(e.key);
    const n = (this.counts.get(tenant) ?? 0) + (isPending ? 1 : -1);
    this.counts.set(tenant, n);
    pendingGauge.set({ tenant }, n);
  }
}

import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { Counter } from 'prom-client';
import { auditSubject, HEADERS, newUlid, isTenantId, unavailable, type JsonValue } from '#libs/contracts';
import { encodeJson, JetStreamPublishError, LOGGER, NATS, publisherFor, WRONG_LAST_SEQUENCE, type JetStreamPublisher } from '#libs/messaging';
import type { Principal } from '#libs/policy';
import { currentTraceparent, registry, traceIdOf, type Logger } from '#libs/telemetry';
import { sealAuditRecord, AUDIT_RECORD_VERSION, type AuditActor, type AuditRecord, type AuditTarget } from './chain.js';
import { auditHead, readAuditPage, type AuditHead, type AuditLocation } from './reader.js';

export const auditMetrics = {
  records: new Counter({
    name: 'agentmesh_audit_records_total', help: 'Audit records appended (outcome appended) or lost after retries (outcome failed)',
    labelNames: ['outcome'], registers: [registry],
  }),
};

/** What a caller records; the chain fields (seq, id, at, prevHash, hash) are added by AuditLog. */
export interface AuditEntry {
  /** The tenant whose chain the record goes to. */
  readonly tenant: string;
  /** The operation id (`apikeys.issue`, `approvals.decide`...). */
  readonly action: string;
  /** The principal of the request (or an explicit actor for service actions). */
  readonly actor: Principal | AuditActor;
  readonly target?: AuditTarget;
  /** Non-secret facts only: never keys, secrets, tokens or credential material. */
  readonly details?: { readonly [k: string]: JsonValue | undefined };
}

const isActor = (a: Principal | AuditActor): a is AuditActor => typeof (a as AuditActor).kind === 'string';

/** The audit actor of a request principal: the key id and roles, never the key. */
export function actorOf(p: Principal | AuditActor): AuditActor {
  if (isActor(p)) return p;
  if ('platformAdmin' in p && p.platformAdmin) return { kind: 'platform_admin', id: 'platform-admin' };
  const t = p as { subject?: string; roles?: readonly string[] };
  return { kind: 'api_key', id: t.subject ?? 'key:unknown', ...(t.roles ? { roles: [...t.roles] } : {}) };
}

const MAX_ATTEMPTS = 10;

/**
 * The security audit trail: an append-only, hash-chained JetStream stream (AGENTMESH_AUDIT), one
 * chain per tenant on `audit.<tenant>` (chain.ts). Appends carry
 * `Nats-Expected-Last-Subject-Sequence` = the chain head's stream sequence, so two writers (two
 * gateway instances, two requests) can never both extend the same head: the loser re-reads the
 * head and appends after the winner. Appends of one tenant are serialised inside an instance and
 * the head is cached, so a record normally costs one publish.
 *
 * Other gateway code (the approvals API) records through `record()`; it never throws, because the
 * action it describes has already happened; a record that cannot be written after retries is
 * logged (without its details) and counted in agentmesh_audit_records_total{outcome="failed"}.
 */
@Injectable()
export class AuditLog implements OnModuleInit {
  private jsm!: JetStreamManager;
  private publisher!: JetStreamPublisher;
  private readonly heads = new Map<string, AuditHead>();
  private readonly queues = new Map<string, Promise<unknown>>();

  /** The stream and subject of the chains: the platform's unless a test opened the log elsewhere. */
  private loc: AuditLocation = {};

  constructor(@Inject(NATS) private readonly nc: NatsConnection, @Inject(LOGGER) private readonly logger: Logger) {}

  /** An AuditLog outside Nest (tests, tools), optionally over another stream and subject. */
  static async open(nc: NatsConnection, logger: Logger, loc: AuditLocation = {}): Promise<AuditLog> {
    const log = new AuditLog(nc, logger);
    log.loc = loc;
    await log.onModuleInit();
    return log;
  }

  async onModuleInit(): Promise<void> {
    this.jsm = await jetstreamManager(this.nc);
    this.publisher = publisherFor(this.nc);
  }

  /** Records an action; never throws (see the class comment). Returns the record, or undefined if it was lost. */
  async record(entry: AuditEntry): Promise<AuditRecord | undefined> {
    try {
      return await this.append(entry);
    } catch (err) {
      auditMetrics.records.inc({ outcome: 'failed' });
      this.logger.error({ err, tenant: entry.tenant, action: entry.action }, 'an audit record could not be written');
      return undefined;
    }
  }

  /** Appends a record to the tenant's chain and returns it; throws when the broker keeps refusing. */
  async append(entry: AuditEntry): Promise<AuditRecord> {
    if (!isTenantId(entry.tenant)) throw new Error(`audit: "${entry.tenant}" is not a tenant id`);
    const t = entry.tenant;
    const prev = this.queues.get(t) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.appendNow(entry));
    this.queues.set(t, run);
    void run.catch(() => undefined).finally(() => { if (this.queues.get(t) === run) this.queues.delete(t); });
    return run;
  }

  private async appendNow(entry: AuditEntry): Promise<AuditRecord> {
    const t = entry.tenant;
    const id = newUlid();
    const at = new Date().toISOString();
    const traceId = traceIdOf(currentTraceparent());
    const subject = this.loc.subject ?? auditSubject(t);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const head = this.heads.get(t) ?? await auditHead(this.jsm, t, this.loc);
      const record = sealAuditRecord({
        v: AUDIT_RECORD_VERSION, tenantId: t, seq: head.seq + 1, id, at, action: entry.action, actor: actorOf(entry.actor),
        ...(entry.target ? { target: entry.target } : {}),
        ...(entry.details ? { details: entry.details as { [k: string]: JsonValue } } : {}),
        ...(traceId ? { traceId } : {}),
        prevHash: head.hash,
      });
      const h = natsHeaders();
      h.set(HEADERS.type, 'audit.record');
      h.set(HEADERS.tenant, t);
      h.set('Nats-Msg-Id', `audit:${id}`);
      h.set('Nats-Expected-Last-Subject-Sequence', String(head.streamSeq));
      try {
        const ack = await this.publisher.publish(subject, encodeJson(record), h);
        if (ack.duplicate) {
          // an earlier attempt of this very record was stored after all: its content is the stored one
          this.heads.delete(t);
          auditMetrics.records.inc({ outcome: 'appended' });
          return record;
        }
        this.heads.set(t, { streamSeq: ack.seq, seq: record.seq, hash: record.hash });
        auditMetrics.records.inc({ outcome: 'appended' });
        return record;
      } catch (err) {
        this.heads.delete(t);
        if (err instanceof JetStreamPublishError && err.apiCode === WRONG_LAST_SEQUENCE) continue; // another writer appended first
        throw err;
      }
    }
    throw unavailable(`the audit chain of ${t} kept moving; the record was not appended after ${MAX_ATTEMPTS} attempts`);
  }

  /** Records after chain position `after` (0: from the start), up to `limit`, and the chain head. */
  async page(tenant: string, after: number, limit: number): Promise<{ records: AuditRecord[]; head: AuditHead }> {
    return readAuditPage(this.jsm, tenant, after, limit, this.loc);
  }
}

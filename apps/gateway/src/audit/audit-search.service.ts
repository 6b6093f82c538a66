import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { invalid } from '#libs/contracts';
import { LOGGER, NATS } from '#libs/messaging';
import { STORE, type AuditEntry, type Repositories } from '#libs/store';
import type { Logger } from '#libs/telemetry';
import { AuditProjector } from './audit-projector.js';

/** The audit filters (REST query / gRPC request fields); any of them selects the search read model. */
export interface AuditFilters {
  action?: string;
  /** at >= from (ISO-8601) */
  from?: string;
  /** at < to (ISO-8601) */
  to?: string;
  cursor?: string;
}

/** One entry of a filtered audit listing. */
export interface AuditSearchItem {
  id: string;
  /** The record's position in the tenant's chain (`?after=<seq - 1>&limit=1` returns the record itself). */
  seq: number;
  at: string;
  action: string;
  /** `key:<id>`, `platform-admin` or a service name. */
  actor: string;
  outcome: AuditEntry['outcome'];
  /** `<type>:<id>` of the target, when the action has one. */
  resource?: string;
  /** The record's details, strings as they are and anything else as JSON. */
  detail?: Record<string, string>;
}

/** A filtered audit listing, newest first; `nextCursor` is null on the last page. */
export interface AuditSearchPage {
  tenant: string;
  entries: AuditSearchItem[];
  nextCursor: string | null;
}

const ACTION = /^[a-z][a-z0-9_.-]{0,99}$/;

export const hasAuditFilters = (f: AuditFilters): boolean =>
  [f.action, f.from, f.to, f.cursor].some((v) => v !== undefined && v !== '');

/** Validates the filters (400 naming the field); empty strings count as absent. */
export function auditFilters(raw: Record<string, unknown>): AuditFilters {
  const out: AuditFilters = {};
  for (const k of ['action', 'from', 'to', 'cursor'] as const) {
    const v = raw[k];
    if (v === undefined || v === '' || v === null) continue;
    if (typeof v !== 'string' || v.length > 500) throw invalid(`${k} must be a string`, [{ field: k, message: 'invalid' }]);
    if (k === 'action' && !ACTION.test(v)) throw invalid('action must be an operation id such as tools.put', [{ field: 'action', message: 'is malformed' }]);
    if ((k === 'from' || k === 'to') && Number.isNaN(Date.parse(v))) throw invalid(`${k} must be an ISO-8601 instant`, [{ field: k, message: 'invalid' }]);
    out[k] = v;
  }
  if (out.from && out.to && Date.parse(out.from) > Date.parse(out.to)) throw invalid('from must not be after to', [{ field: 'from', message: 'after to' }]);
  return out;
}

const itemOf = (e: AuditEntry): AuditSearchItem => {
  const { seq, ...rest } = e.detail ?? {};
  return {
    id: e.id, seq: Number(seq ?? 0), at: e.at, action: e.action, actor: e.actor, outcome: e.outcome,
    ...(e.resource !== undefined ? { resource: e.resource } : {}),
    ...(Object.keys(rest).length ? { detail: rest } : {}),
  };
};

/**
 * Filtered audit reads from the `audit` read model (libs/store), kept current by the
 * AuditProjector this service runs from application bootstrap to shutdown (one per gateway
 * instance; duplicates change nothing). The read model lags the chain by the projection delay
 * (normally milliseconds); the unfiltered chain read (AuditLog.page) does not.
 */
@Injectable()
export class AuditSearch implements OnApplicationBootstrap, OnModuleDestroy {
  private projector?: AuditProjector;

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(STORE) private readonly store: Repositories,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    this.projector = new AuditProjector(this.nc, this.store, { logger: this.logger });
    this.projector.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.projector?.stop();
  }

  async search(tenant: string, f: AuditFilters, limit: number): Promise<AuditSearchPage> {
    const page = await this.store.forTenant(tenant).audit.search({
      limit, ...(f.action ? { action: f.action } : {}), ...(f.from ? { from: f.from } : {}), ...(f.to ? { to: f.to } : {}), ...(f.cursor ? { cursor: f.cursor } : {}),
    });
    return { tenant, entries: page.items.map(itemOf), nextCursor: page.nextCursor };
  }
}

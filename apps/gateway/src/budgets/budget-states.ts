import type { NatsConnection } from '@nats-io/transport-node';
import type { BudgetStatus, BudgetView } from '#libs/contracts';
import { RpcClient } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';

export interface BudgetAdmission {
  state: BudgetStatus;
  /** Seconds until the current budget period ends (when an exhausted budget starts afresh). */
  retryAfterSeconds: number;
}

interface Entry extends BudgetAdmission { at: number }

const MAX_ENTRIES = 10_000;

/**
 * Each tenant's budget state for admission (`budgetState` of `runs.start`), asked of the
 * cost-governor and trusted for a short while. One per gateway process and NATS connection, shared
 * by the Authorizer and the budget routes (a PUT refreshes it at once). When the governor does not
 * answer, the last known state is used, or `ok` when there is none: admission degrades open, while
 * runs still stop at their next call through the circuit breaker and wait at priced calls until the
 * governor is back.
 */
export class BudgetStates {
  private static readonly byConnection = new WeakMap<NatsConnection, BudgetStates>();
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<BudgetAdmission>>();
  private readonly rpc: RpcClient;

  private constructor(nc: NatsConnection, private readonly ttlMs: number, private readonly logger?: Logger) {
    this.rpc = new RpcClient(nc, 2000);
  }

  static for(nc: NatsConnection, ttlMs: number, logger?: Logger): BudgetStates {
    let s = BudgetStates.byConnection.get(nc);
    if (!s) {
      s = new BudgetStates(nc, ttlMs, logger);
      BudgetStates.byConnection.set(nc, s);
    }
    return s;
  }

  async admission(tenantId: string): Promise<BudgetAdmission> {
    const e = this.entries.get(tenantId);
    if (e && Date.now() - e.at < this.ttlMs) return e;
    let p = this.inflight.get(tenantId);
    if (!p) {
      p = this.fetch(tenantId, e).finally(() => this.inflight.delete(tenantId));
      this.inflight.set(tenantId, p);
    }
    return p;
  }

  /** Takes a budget the governor just returned (GET or PUT). */
  remember(view: BudgetView): void {
    if (!this.entries.has(view.tenantId) && this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(view.tenantId, {
      state: view.state,
      retryAfterSeconds: Math.max(1, Math.ceil((Date.parse(view.periodEnd) - Date.now()) / 1000)),
      at: Date.now(),
    });
  }

  private async fetch(tenantId: string, stale: Entry | undefined): Promise<BudgetAdmission> {
    try {
      const view = await this.rpc.call('budget.get', { tenantId });
      this.remember(view);
      return this.entries.get(tenantId)!;
    } catch (err) {
      this.logger?.warn({ err, tenant: tenantId }, 'cost-governor unavailable; admitting on the last known budget state');
      return stale ?? { state: 'ok', retryAfterSeconds: 1 };
    }
  }
}

import type { CallKind, BudgetLine, BudgetPeriod, BudgetScope, BudgetSettings, BudgetStatus, BudgetView } from '#libs/contracts';

/**
 * Budget arithmetic, pure. Money is kept in whole micro-dollars (integers) so that sums never
 * drift; the API speaks USD. A budget document holds the limit, what was spent in the current
 * period, and the holds (reservations) of calls in flight, keyed by call key: the holds make a
 * reservation idempotent, and their removal at settlement makes the charge happen once.
 */
export const MICROS_PER_USD = 1_000_000;
export const toMicros = (usd: number): number => Math.round(usd * MICROS_PER_USD);
export const toUsd = (micros: number): number => micros / MICROS_PER_USD;

/** Below this share of the limit left, the state is `low`. */
export const LOW_FRACTION = 0.1;
/** Released (expired) holds are remembered this long, so a late settlement is still charged once. */
export const EXPIRED_HOLD_RETENTION_MS = 30 * 24 * 3600_000;
const SWEEP_EVERY_MS = 60_000;

/** What a call is, for its usage record when it settles. */
export interface CallMeta {
  run: string;
  kind: CallKind;
  tool?: string;
  model?: string;
}

export interface Hold extends CallMeta {
  /** micro-dollars held */
  m: number;
  agent: string;
  /** epoch ms of the reservation */
  at: number;
}

export interface AgentLine {
  limit: number | null;
  spent: number;
  reserved: number;
}

export interface BudgetDoc {
  tenantId: string;
  /** micro-dollars; null: no limit */
  limit: number | null;
  period: BudgetPeriod;
  periodStart: string;
  spent: number;
  reserved: number;
  holds: Record<string, Hold>;
  /** Holds released after the hold TTL and not yet settled (call key → hold). */
  expired: Record<string, Hold>;
  /** Per-agent caps, for the agents that have one. */
  agents: Record<string, AgentLine>;
  updatedAt: string | null;
  /** epoch ms of the last sweep of expired holds */
  sweptAt?: number;
}

export function periodStartOf(period: BudgetPeriod, nowMs: number): number {
  const d = new Date(nowMs);
  return period === 'day'
    ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())
    : Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

export function periodEndOf(period: BudgetPeriod, startMs: number): number {
  const d = new Date(startMs);
  return period === 'day'
    ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
    : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** A tenant with no budget set: no limit, monthly period, nothing spent. */
export function emptyBudget(tenantId: string, nowMs: number): BudgetDoc {
  return {
    tenantId, limit: null, period: 'month', periodStart: new Date(periodStartOf('month', nowMs)).toISOString(),
    spent: 0, reserved: 0, holds: {}, expired: {}, agents: {}, updatedAt: null,
  };
}

/**
 * Brings a document to `nowMs`: a new period starts with nothing spent (holds carry over), holds
 * older than `holdTtlMs` stop holding money (they move to `expired` and are still charged if they
 * settle), and old expired holds are forgotten. Returns whether anything changed.
 */
export function advance(doc: BudgetDoc, nowMs: number, holdTtlMs: number): boolean {
  let changed = false;
  const start = periodStartOf(doc.period, nowMs);
  if (start > Date.parse(doc.periodStart)) {
    doc.periodStart = new Date(start).toISOString();
    doc.spent = 0;
    for (const a of Object.values(doc.agents)) a.spent = 0;
    changed = true;
  }
  // holds are swept at most once a minute: the scan is linear in the calls in flight
  if (nowMs - (doc.sweptAt ?? 0) < SWEEP_EVERY_MS) return changed;
  doc.sweptAt = nowMs; // persisted with the next change; alone it is not worth a write
  for (const [key, h] of Object.entries(doc.holds)) {
    if (nowMs - h.at < holdTtlMs) continue;
    delete doc.holds[key];
    doc.reserved -= h.m;
    const a = doc.agents[h.agent];
    if (a) a.reserved -= h.m;
    doc.expired[key] = h;
    changed = true;
  }
  for (const [key, h] of Object.entries(doc.expired)) {
    if (nowMs - h.at < EXPIRED_HOLD_RETENTION_MS) continue;
    delete doc.expired[key];
    changed = true;
  }
  return changed;
}

export interface ReserveInput {
  callKey: string;
  micros: number;
  agent: string;
  meta?: CallMeta;
  /** The run's cap and spend, micro-dollars. */
  run?: { spent: number; limit?: number };
}

export type ReserveOutcome =
  | { granted: true; micros: number; replayed: boolean }
  | { granted: false; scope: BudgetScope; reason: string; replayed: boolean };

/** `$1.50`, or all six decimals when cents are not enough. */
export const fmt = (micros: number): string => `$${toUsd(micros).toFixed(micros % 10_000 === 0 ? 2 : 6)}`;

/**
 * Holds `micros` for one call if every cap it falls under has room: the run's own cap, its agent's
 * cap, the tenant's limit (spent + reserved + this call <= limit). Idempotent on the call key.
 */
export function reserve(doc: BudgetDoc, r: ReserveInput, nowMs: number): { outcome: ReserveOutcome; changed: boolean } {
  const held = doc.holds[r.callKey] ?? doc.expired[r.callKey];
  if (held) return { outcome: { granted: true, micros: held.m, replayed: true }, changed: false };
  if (r.run?.limit !== undefined && r.run.spent + r.micros > r.run.limit) {
    return refuse('run', `the run's budget of ${fmt(r.run.limit)} does not cover this call (${fmt(r.micros)}; spent ${fmt(r.run.spent)})`);
  }
  const a = doc.agents[r.agent];
  if (a && a.limit !== null && a.spent + a.reserved + r.micros > a.limit) {
    return refuse('agent', `agent ${r.agent}'s budget of ${fmt(a.limit)} per ${doc.period} does not cover this call (${fmt(r.micros)}; spent ${fmt(a.spent)}, reserved ${fmt(a.reserved)})`);
  }
  if (doc.limit !== null && doc.spent + doc.reserved + r.micros > doc.limit) {
    return refuse('tenant', `the tenant's budget of ${fmt(doc.limit)} per ${doc.period} does not cover this call (${fmt(r.micros)}; spent ${fmt(doc.spent)}, reserved ${fmt(doc.reserved)})`);
  }
  doc.holds[r.callKey] = { ...(r.meta ?? { run: '', kind: 'tool' }), m: r.micros, agent: r.agent, at: nowMs };
  doc.reserved += r.micros;
  if (a) a.reserved += r.micros;
  return { outcome: { granted: true, micros: r.micros, replayed: false }, changed: true };
}

function refuse(scope: BudgetScope, reason: string): { outcome: ReserveOutcome; changed: boolean } {
  return { outcome: { granted: false, scope, reason, replayed: false }, changed: false };
}

/**
 * Charges `micros` for a reserved call and releases its hold. Applied once: without a hold (or an
 * expired one) for the call key the settlement already happened, and nothing is charged.
 */
export function settle(doc: BudgetDoc, callKey: string, micros: number): { applied: boolean; hold?: Hold } {
  const hold = doc.holds[callKey];
  const late = hold ? undefined : doc.expired[callKey];
  if (!hold && !late) return { applied: false };
  const h = (hold ?? late)!;
  if (hold) {
    delete doc.holds[callKey];
    doc.reserved -= h.m;
  } else {
    delete doc.expired[callKey];
  }
  doc.spent += micros;
  const a = doc.agents[h.agent];
  if (a) {
    if (hold) a.reserved -= h.m;
    a.spent += micros;
  }
  return { applied: true, hold: h };
}

/** Sets the limit, period and agent caps. A new period kind starts a new period from now. */
export function configure(doc: BudgetDoc, s: BudgetSettings, nowMs: number): void {
  doc.limit = s.limitUsd === null ? null : toMicros(s.limitUsd);
  if (s.period !== doc.period) {
    doc.period = s.period;
    doc.periodStart = new Date(periodStartOf(s.period, nowMs)).toISOString();
  }
  const agents: Record<string, AgentLine> = {};
  for (const [name, cap] of Object.entries(s.agents ?? {})) {
    const cur = doc.agents[name];
    agents[name] = { limit: cap.limitUsd === null ? null : toMicros(cap.limitUsd), spent: cur?.spent ?? 0, reserved: cur?.reserved ?? 0 };
  }
  // agents dropped from the settings keep nothing: their holds still settle against the tenant
  doc.agents = agents;
}

/** `exhausted` once spent reaches the limit (holds do not trip it), `low` under 10% left. */
export function statusOf(doc: Pick<BudgetDoc, 'limit' | 'spent' | 'reserved'>): BudgetStatus {
  if (doc.limit === null) return 'ok';
  if (doc.spent >= doc.limit) return 'exhausted';
  return doc.limit - doc.spent - doc.reserved < doc.limit * LOW_FRACTION ? 'low' : 'ok';
}

function line(l: { limit: number | null; spent: number; reserved: number }): BudgetLine {
  return {
    limitUsd: l.limit === null ? null : toUsd(l.limit),
    spentUsd: toUsd(l.spent),
    reservedUsd: toUsd(l.reserved),
    remainingUsd: l.limit === null ? null : toUsd(Math.max(0, l.limit - l.spent - l.reserved)),
  };
}

export function viewOf(doc: BudgetDoc): BudgetView {
  const start = Date.parse(doc.periodStart);
  return {
    tenantId: doc.tenantId,
    ...line(doc),
    period: doc.period,
    periodStart: doc.periodStart,
    periodEnd: new Date(periodEndOf(doc.period, start)).toISOString(),
    state: statusOf(doc),
    agents: Object.fromEntries(Object.entries(doc.agents).map(([k, a]) => [k, line(a)])),
    updatedAt: doc.updatedAt,
  };
}

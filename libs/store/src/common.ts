import {
  AgentmeshError, conflict, invalid, isTenantId, SESSION_ID,
  type UsageEvent, type UsageGroupBy, type UsageReport, type UsageTotals,
} from '#libs/contracts';
import type {
  AuditEntry, CredentialMetadata, EncryptedSecretFields, SessionDocument, SessionRunRecord, SessionWrite,
} from './repositories.js';

/** Rules both implementations share, so they cannot drift apart. */

export const DEFAULT_SESSION_TTL_MS = 24 * 3_600_000;
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 1000;

export function assertTenantId(tenantId: string): string {
  if (!isTenantId(tenantId)) throw invalid(`malformed tenant id ${JSON.stringify(String(tenantId).slice(0, 80))}`, [{ field: 'tenantId', message: 'does not match ^[a-z0-9][a-z0-9-]{1,62}$' }]);
  return tenantId;
}

export function assertSessionId(sessionId: string): void {
  if (typeof sessionId !== 'string' || !SESSION_ID.test(sessionId)) throw invalid('malformed session id', [{ field: 'sessionId', message: 'is malformed' }]);
}

/**
 * `forTenant` memoised: the tenant-bound repositories are stateless (a context and the tenant id),
 * so services on the hot path (every authenticated request, every run start) reuse them instead of
 * validating the id and allocating ten objects per call. Bounded: the map is cleared when full.
 */
export function memoForTenant<R>(make: (tenantId: string) => R, max = 10_000): (tenantId: string) => R {
  const cache = new Map<string, R>();
  return (tenantId: string): R => {
    let r = cache.get(tenantId);
    if (r === undefined) {
      r = make(tenantId); // validates the id: a malformed one throws and is never cached
      if (cache.size >= max) cache.clear();
      cache.set(tenantId, r);
    }
    return r;
  };
}

export const pageSize = (limit: number | undefined): number => {
  if (limit === undefined) return DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw invalid(`limit must be an integer in [1, ${MAX_PAGE}]`, [{ field: 'limit', message: 'out of range' }]);
  return limit;
};

export const versionConflict = (kind: 'agent' | 'tool', name: string, version: string): AgentmeshError =>
  conflict(`${kind} ${name} version ${version} already exists with a different definition; versions are immutable`, 'version_exists');

// ---- credentials ----------------------------------------------------------------------------------

const SECRET_KEYS = ['v', 'alg', 'dataKeyId', 'nonce', 'ciphertext', 'tag'] as const;
const META_KEYS = new Set(['kind', 'allowedTools', 'scopes', 'description']);
const B64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Accepts exactly the envelope fields (no plaintext can slip in under another name) and returns a
 * clean copy. Throws invalid_argument naming the offending field, never its value.
 */
export function cleanCredential(secret: EncryptedSecretFields, metadata: CredentialMetadata): { secret: EncryptedSecretFields; metadata: CredentialMetadata } {
  const fields: Array<{ field: string; message: string }> = [];
  if (!secret || typeof secret !== 'object') throw invalid('credential secret must be an encrypted envelope', [{ field: 'secret', message: 'missing' }]);
  for (const k of Object.keys(secret)) if (!(SECRET_KEYS as readonly string[]).includes(k)) fields.push({ field: `secret.${k}`, message: 'is not an encrypted-envelope field' });
  if (secret.v !== 1) fields.push({ field: 'secret.v', message: 'must be 1' });
  if (secret.alg !== 'A256GCM') fields.push({ field: 'secret.alg', message: 'must be A256GCM' });
  for (const k of ['dataKeyId', 'nonce', 'ciphertext', 'tag'] as const) {
    const v = secret[k];
    if (typeof v !== 'string' || v.length === 0 || v.length > 1_000_000) fields.push({ field: `secret.${k}`, message: 'must be a non-empty string' });
    else if (k !== 'dataKeyId' && !B64URL.test(v)) fields.push({ field: `secret.${k}`, message: 'must be base64url' });
  }
  if (!metadata || typeof metadata !== 'object') fields.push({ field: 'metadata', message: 'must be an object' });
  else {
    for (const k of Object.keys(metadata)) if (!META_KEYS.has(k)) fields.push({ field: `metadata.${k}`, message: 'is not a credential metadata field' });
    if (typeof metadata.kind !== 'string' || !metadata.kind) fields.push({ field: 'metadata.kind', message: 'must be a non-empty string' });
    for (const k of ['allowedTools', 'scopes'] as const) {
      const v = metadata[k];
      if (v !== undefined && (!Array.isArray(v) || v.some((s) => typeof s !== 'string'))) fields.push({ field: `metadata.${k}`, message: 'must be a list of strings' });
    }
    if (metadata.description !== undefined && typeof metadata.description !== 'string') fields.push({ field: 'metadata.description', message: 'must be a string' });
  }
  if (fields.length) throw invalid('a credential is stored as ciphertext and metadata only', fields);
  return {
    secret: { v: 1, alg: 'A256GCM', dataKeyId: secret.dataKeyId, nonce: secret.nonce, ciphertext: secret.ciphertext, tag: secret.tag },
    metadata: {
      kind: metadata.kind,
      ...(metadata.allowedTools ? { allowedTools: [...metadata.allowedTools] } : {}),
      ...(metadata.scopes ? { scopes: [...metadata.scopes] } : {}),
      ...(metadata.description !== undefined ? { description: metadata.description } : {}),
    },
  };
}

// ---- sessions --------------------------------------------------------------------------------------

const strOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** A session's runs copied field by field (whatever else a stored or given object holds is dropped). */
export function cleanSessionRuns(runs: readonly SessionRunRecord[]): SessionRunRecord[] {
  if (!Array.isArray(runs)) throw invalid('a session has a list of runs', [{ field: 'runs', message: 'is not a list' }]);
  return runs.map((r) => {
    if (!r || typeof r.runId !== 'string' || typeof r.agent !== 'string' || typeof r.agentVersion !== 'string'
      || typeof r.status !== 'string' || typeof r.createdAt !== 'string') {
      throw invalid('a session run has runId, agent, agentVersion, status and createdAt', [{ field: 'runs', message: 'is malformed' }]);
    }
    return {
      runId: r.runId, agent: r.agent, agentVersion: r.agentVersion, status: r.status,
      input: strOrNull(r.input), output: strOrNull(r.output),
      error: r.error && typeof r.error.code === 'string' ? { code: r.error.code, message: String(r.error.message ?? '') } : null,
      createdAt: r.createdAt, endedAt: strOrNull(r.endedAt),
    };
  });
}

/** Checks a write and stamps it at `nowMs`: `updatedAt` = now, `expiresAt` = now + TTL (sliding). */
export function sessionToWrite(tenantId: string, w: SessionWrite, nowMs: number, ttlMs: number): SessionDocument {
  assertSessionId(w?.sessionId);
  if (typeof w.createdAt !== 'string') throw invalid('a session has createdAt', [{ field: 'createdAt', message: 'is required' }]);
  return {
    sessionId: w.sessionId, tenantId, runs: cleanSessionRuns(w.runs), createdAt: w.createdAt,
    updatedAt: new Date(nowMs).toISOString(), expiresAt: new Date(nowMs + ttlMs).toISOString(),
  };
}

/** A stored session mapped field by field, with the expiry the store computed. */
export const sessionOf = (d: { sessionId: string; runs: SessionRunRecord[]; createdAt: string; updatedAt: string }, tenantId: string, expiresAtMs: number): SessionDocument => ({
  sessionId: d.sessionId, tenantId, runs: cleanSessionRuns(d.runs ?? []), createdAt: d.createdAt, updatedAt: d.updatedAt,
  expiresAt: new Date(expiresAtMs).toISOString(),
});

// ---- usage rollups ------------------------------------------------------------------------------------

const HOUR_MS = 3_600_000;
const MICROS = 1_000_000;

/** Totals with money in micro-dollars (integers, so sums never drift). */
export interface Tally { m: number; calls: number; in: number; out: number }

/**
 * One tenant's usage in one UTC hour; the same document the cost-governor keeps in
 * am_usage_rollups (`<tenant>.h.<YYYYMMDDHH>`). `throughSeq`: the last usage-stream sequence in it.
 */
export interface HourRollup {
  tenantId: string;
  hour: string;
  throughSeq: number;
  total: Tally;
  agent: Record<string, Tally>;
  model: Record<string, Tally>;
  tool: Record<string, Tally>;
}

export const zeroTally = (): Tally => ({ m: 0, calls: 0, in: 0, out: 0 });
export const emptyRollup = (tenantId: string, hour: string): HourRollup => ({ tenantId, hour, throughSeq: 0, total: zeroTally(), agent: {}, model: {}, tool: {} });

/** `YYYYMMDDHH` (UTC) of an instant. */
export const hourKey = (ms: number): string => new Date(Math.floor(ms / HOUR_MS) * HOUR_MS).toISOString().slice(0, 13).replace(/[-T]/g, '');

/** The hour keys [lo, hiExclusive) whose hours start in [hour of from, to). */
export function hourRange(from: string, to: string): { lo: string; hi: string } {
  const f = Date.parse(from);
  const t = Date.parse(to);
  if (Number.isNaN(f) || Number.isNaN(t) || t < f) throw invalid('from and to must be ISO-8601 instants with from <= to', [{ field: 'from', message: 'invalid range' }]);
  return { lo: hourKey(f), hi: hourKey(t + HOUR_MS - 1) };
}

/** Groups events by hour, in order. */
export function byHour(events: ReadonlyArray<{ seq: number; usage: UsageEvent }>): Map<string, Array<{ seq: number; usage: UsageEvent }>> {
  const m = new Map<string, Array<{ seq: number; usage: UsageEvent }>>();
  for (const e of events) {
    const at = Date.parse(e.usage.at);
    if (Number.isNaN(at)) throw invalid('usage event without a valid `at`', [{ field: 'at', message: 'invalid' }]);
    const h = hourKey(at);
    const list = m.get(h) ?? [];
    list.push(e);
    m.set(h, list);
  }
  return m;
}

const addTo = (t: Tally, u: UsageEvent): void => {
  t.m += Math.round(u.usd * MICROS); t.calls += 1; t.in += u.inputTokens; t.out += u.outputTokens;
};

/** Folds events (ascending seq) into a copy of the rollup; null when every event was already in. */
export function foldRollup(doc: HourRollup, events: ReadonlyArray<{ seq: number; usage: UsageEvent }>): HourRollup | null {
  const next: HourRollup = structuredClone(doc);
  let changed = false;
  for (const { seq, usage: u } of events) {
    if (seq <= next.throughSeq) continue;
    addTo(next.total, u);
    addTo((next.agent[u.agent] ??= zeroTally()), u);
    if (u.model) addTo((next.model[u.model] ??= zeroTally()), u);
    if (u.tool) addTo((next.tool[u.tool] ??= zeroTally()), u);
    next.throughSeq = seq;
    changed = true;
  }
  return changed ? next : null;
}

const totalsOf = (t: Tally): UsageTotals => ({ usd: t.m / MICROS, calls: t.calls, inputTokens: t.in, outputTokens: t.out });

/** Sums hourly rollups into a report (groups by cost, then key). */
export function usageReport(tenantId: string, from: string, to: string, groupBy: UsageGroupBy | undefined, hours: HourRollup[]): UsageReport {
  const total = zeroTally();
  const groups = new Map<string, Tally>();
  for (const h of hours) {
    total.m += h.total.m; total.calls += h.total.calls; total.in += h.total.in; total.out += h.total.out;
    if (!groupBy) continue;
    for (const [k, t] of Object.entries(h[groupBy])) {
      const g = groups.get(k) ?? zeroTally();
      g.m += t.m; g.calls += t.calls; g.in += t.in; g.out += t.out;
      groups.set(k, g);
    }
  }
  return {
    tenantId, from, to, granularity: 'hour', groupBy: groupBy ?? null, totals: totalsOf(total),
    groups: [...groups.entries()].map(([key, t]) => ({ key, ...totalsOf(t) })).sort((a, b) => b.usd - a.usd || a.key.localeCompare(b.key)),
  };
}

// ---- audit ------------------------------------------------------------------------------------------

/** Opaque cursor of the audit search: the (at, id) of the last entry of the page. */
export const auditCursor = (e: Pick<AuditEntry, 'at' | 'id'>): string => Buffer.from(JSON.stringify([e.at, e.id]), 'utf8').toString('base64url');

export function parseAuditCursor(c: string): { at: string; id: string } {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return { at: v[0], id: v[1] };
  } catch { /* falls through */ }
  throw invalid('malformed cursor', [{ field: 'cursor', message: 'is malformed' }]);
}

/** Newest first: `at` descending, then id descending. */
export const auditOrder = (a: AuditEntry, b: AuditEntry): number =>
  a.at < b.at ? 1 : a.at > b.at ? -1 : a.id < b.id ? 1 : a.id > b.id ? -1 : 0;

export function cleanAudit(tenantId: string, e: Omit<AuditEntry, 'tenantId'>): AuditEntry {
  if (typeof e.id !== 'string' || !e.id || e.id.length > 200) throw invalid('audit entry id must be a non-empty string', [{ field: 'id', message: 'invalid' }]);
  if (Number.isNaN(Date.parse(e.at))) throw invalid('audit entry at must be ISO-8601', [{ field: 'at', message: 'invalid' }]);
  return {
    id: e.id, tenantId, at: new Date(Date.parse(e.at)).toISOString(), action: e.action, actor: e.actor, outcome: e.outcome,
    ...(e.resource !== undefined ? { resource: e.resource } : {}),
    ...(e.detail !== undefined ? { detail: { ...e.detail } } : {}),
  };
}

export function checkRange(from?: string, to?: string): void {
  for (const [field, v] of [['from', from], ['to', to]] as const) {
    if (v !== undefined && Number.isNaN(Date.parse(v))) throw invalid(`${field} must be an ISO-8601 instant`, [{ field, message: 'invalid' }]);
  }
}

/** ISO instants normalised so string comparison is time comparison. */
export const isoOf = (s: string): string => new Date(Date.parse(s)).toISOString();

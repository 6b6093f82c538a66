/**
 * The per-tenant set of admitted, not yet ended runs behind the concurrent-run cap, as pure
 * transitions over one JSON document (`am_active_runs`, key `<tenant>.active`), written with
 * compare-and-set on the KV revision by ActiveRuns.
 *
 * Admission reserves a slot under a pending token before the run exists (so concurrent admissions
 * on any number of gateways never pass the cap together), then commits the token to the run id
 * once the start command is published, or releases it. The run's terminal journal event removes
 * it. A terminal event that arrives before its run was committed (very short runs) leaves a
 * tombstone, so the late commit does not count an ended run.
 */

export interface ActiveEntry {
  /** Admission time (epoch ms). */
  readonly at: number;
  /** The run's session, for the session history when it ends. */
  readonly s?: string;
  /** A reservation whose run is not yet known. */
  readonly pending?: true;
}

export interface ActiveSet {
  readonly runs: Readonly<Record<string, ActiveEntry>>;
  /** Runs that ended before their admission was committed: run id → when (epoch ms). */
  readonly ended?: Readonly<Record<string, number>>;
}

export const EMPTY_SET: ActiveSet = Object.freeze({ runs: Object.freeze({}) });
/** A reservation not committed by then belongs to a gateway that died mid-admission. */
export const PENDING_TTL_MS = 60_000;
/** How long a tombstone waits for its late commit. */
export const TOMBSTONE_TTL_MS = 120_000;
const MAX_TOMBSTONES = 256;

export const activeCount = (s: ActiveSet): number => Object.keys(s.runs).length;

function prunePending(runs: Record<string, ActiveEntry>, now: number): Record<string, ActiveEntry> {
  const out: Record<string, ActiveEntry> = {};
  for (const [k, v] of Object.entries(runs)) if (!v.pending || now - v.at < PENDING_TTL_MS) out[k] = v;
  return out;
}

function pruneEnded(ended: Readonly<Record<string, number>> | undefined, now: number): Record<string, number> | undefined {
  if (!ended) return undefined;
  let kept = Object.entries(ended).filter(([, at]) => now - at < TOMBSTONE_TTL_MS);
  if (kept.length > MAX_TOMBSTONES) kept = kept.sort((a, b) => b[1] - a[1]).slice(0, MAX_TOMBSTONES); // the newest
  return kept.length ? Object.fromEntries(kept) : undefined;
}

const setOf = (runs: Record<string, ActiveEntry>, ended: Record<string, number> | undefined): ActiveSet => (ended ? { runs, ended } : { runs });

/** Reserves a slot under `token` unless the tenant is at `cap` (0: no cap). Drops stale reservations. */
export function reserve(s: ActiveSet, token: string, cap: number, now: number): { set: ActiveSet; ok: boolean } {
  const runs = prunePending({ ...s.runs }, now);
  if (cap > 0 && Object.keys(runs).length >= cap) return { set: setOf(runs, pruneEnded(s.ended, now)), ok: false };
  runs[token] = { at: now, pending: true };
  return { set: setOf(runs, pruneEnded(s.ended, now)), ok: true };
}

/** Turns a reservation into the run it admitted (or drops it when the run already ended). */
export function commit(s: ActiveSet, token: string, runId: string, sessionId: string | undefined, now: number): ActiveSet {
  const runs = { ...s.runs };
  const reserved = runs[token];
  delete runs[token];
  const ended = pruneEnded(s.ended, now);
  if (ended?.[runId] !== undefined) {
    delete ended[runId];
    return setOf(runs, Object.keys(ended).length ? ended : undefined);
  }
  runs[runId] = { at: reserved?.at ?? now, ...(sessionId ? { s: sessionId } : {}) };
  return setOf(runs, ended);
}

/** Gives a reservation back (the admission failed, or was an idempotent replay). */
export function release(s: ActiveSet, token: string): ActiveSet {
  if (!(token in s.runs)) return s;
  const runs = { ...s.runs };
  delete runs[token];
  return setOf(runs, s.ended ? { ...s.ended } : undefined);
}

/**
 * A run ended: removes it and returns its entry. When it is not there yet but a reservation is
 * pending, leaves a tombstone for the late commit. `changed` false means nothing to write.
 */
export function finish(s: ActiveSet, runId: string, now: number): { set: ActiveSet; entry?: ActiveEntry; changed: boolean } {
  const entry = s.runs[runId];
  if (entry) {
    const runs = { ...s.runs };
    delete runs[runId];
    return { set: setOf(runs, pruneEnded(s.ended, now)), entry, changed: true };
  }
  const pending = Object.values(s.runs).some((e) => e.pending && now - e.at < PENDING_TTL_MS);
  if (!pending) return { set: s, changed: false };
  return { set: setOf({ ...s.runs }, { ...(pruneEnded(s.ended, now) ?? {}), [runId]: now }), changed: true };
}

/** Removes every run id in `ids` (reconciliation found them ended or lost). */
export function removeAll(s: ActiveSet, ids: readonly string[]): ActiveSet {
  const runs = { ...s.runs };
  for (const id of ids) delete runs[id];
  return setOf(runs, s.ended ? { ...s.ended } : undefined);
}

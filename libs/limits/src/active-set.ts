/**
 * The per-tenant set of admitted, not yet ended runs behind the concurrent-run cap, as pure
 * transitions over one JSON document (`am_active_runs`, key `<tenant>.active`), written with
 * compare-and-set on the KV revision by ActiveRuns.
 *
 * A run enters the set before its start command is published (the gateway knows the run id by
 * then), so concurrent admissions on any number of gateways never pass the cap together, and a
 * run can only end after it was counted. It leaves when the orchestrator has appended its
 * terminal event, or when reconciliation against the journal finds it ended or lost.
 */

export interface ActiveEntry {
  /** Admission time (epoch ms). */
  readonly at: number;
  /** The run's session, if it has one. */
  readonly s?: string;
}

export interface ActiveSet {
  readonly runs: Readonly<Record<string, ActiveEntry>>;
}

export const EMPTY_SET: ActiveSet = Object.freeze({ runs: Object.freeze({}) });

export const activeCount = (s: ActiveSet): number => Object.keys(s.runs).length;

/**
 * Counts `runId` against the tenant's cap (0: no cap). Idempotent: a run already in the set is
 * admitted again without a change (`set` is the same object then).
 */
export function admit(s: ActiveSet, runId: string, sessionId: string | undefined, cap: number, now: number): { set: ActiveSet; ok: boolean } {
  if (runId in s.runs) return { set: s, ok: true };
  if (cap > 0 && activeCount(s) >= cap) return { set: s, ok: false };
  return { set: { runs: { ...s.runs, [runId]: { at: now, ...(sessionId ? { s: sessionId } : {}) } } }, ok: true };
}

/** Removes every run id in `ids` (they ended, their admission failed, or reconciliation found them ended or lost). */
export function removeAll(s: ActiveSet, ids: Iterable<string>): ActiveSet {
  let runs: Record<string, ActiveEntry> | undefined;
  for (const id of ids) {
    if (!(id in (runs ?? s.runs))) continue;
    runs ??= { ...s.runs };
    delete runs[id];
  }
  return runs ? { runs } : s;
}

/** Reads a stored document, including one written by an earlier version (pending reservations and tombstones are dropped). */
export function parseActiveSet(doc: unknown): ActiveSet {
  const runs = (doc as { runs?: Record<string, ActiveEntry & { pending?: true }> } | null)?.runs;
  if (!runs || typeof runs !== 'object') return EMPTY_SET;
  const out: Record<string, ActiveEntry> = {};
  for (const [id, e] of Object.entries(runs)) if (!e.pending) out[id] = e.s ? { at: e.at, s: e.s } : { at: e.at };
  return { runs: out };
}

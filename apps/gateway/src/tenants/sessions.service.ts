import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { isTenantId, notFound, SESSION_ID, type JsonValue, type RunStatus } from '#libs/contracts';
import { Journal } from '#libs/journal';
import { LOGGER, NATS } from '#libs/messaging';
import { STORE, type Repositories, type SessionDocument, type SessionRunRecord } from '#libs/store';
import type { Logger } from '#libs/telemetry';

/** One run of a session, as the session history shows it. */
export type SessionRun = SessionRunRecord;

/**
 * `{sessionId, tenantId, runs, createdAt, updatedAt, expiresAt}`: `expiresAt` is when the session is
 * forgotten unless another run is added or ends before (sliding TTL).
 */
export type SessionView = SessionDocument;

export const SUMMARY_CHARS = 500;
/** Runs kept per session (the oldest are dropped first). */
export const MAX_SESSION_RUNS = 500;
const TERMINAL = new Set<string>(['completed', 'failed', 'cancelled']);
const MAX_CAS_ATTEMPTS = 20;

/** Compact JSON of a value cut to `max` characters (an ellipsis marks the cut). */
export function summarize(v: JsonValue | null | undefined, max = SUMMARY_CHARS): string | null {
  if (v === undefined || v === null) return null;
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * Conversation history per session: the runs started with the same `sessionId`, in order, with
 * their status and input/output summaries. One document per session in the store's `sessions`
 * repository (`store.forTenant(t).sessions`; KV: `am_session_runs` `<tenant>.<sessionId>`, MongoDB:
 * `session_runs`), written with compare-and-set on admission and, for the end of a run, when the
 * session is read: its runs not yet recorded as ended are looked up in the journal (the source of
 * truth) and what it says is written back, once per run.
 *
 * Expiry: sliding, AGENTMESH_SESSION_TTL (default 24 h) after the session's last write; an expired
 * session reads as absent (404) and a new run with its id starts it over. KV: the bucket's max age;
 * MongoDB: a TTL index on `expiresAt`; on both, reads compare `expiresAt` with the clock.
 *
 * Graceful degradation: recording never fails a run. When the store is unavailable the run goes
 * on, the failure is logged, and a read later fills in what the journal knows.
 */
@Injectable()
export class SessionsService implements OnModuleInit {
  private journal!: Journal;

  constructor(@Inject(NATS) private readonly nc: NatsConnection, @Inject(STORE) private readonly store: Repositories, @Inject(LOGGER) private readonly logger: Logger) {}

  async onModuleInit(): Promise<void> {
    this.journal = await Journal.open(this.nc);
  }

  /** A run was admitted with this session. Never throws. */
  async recordAdmission(tenant: string, sessionId: string, run: { id: string; agent: string; agentVersion: string; createdAt: string }, input: JsonValue | undefined): Promise<void> {
    try {
      await this.mutate(tenant, sessionId, (doc) => {
        if (doc.runs.some((r) => r.runId === run.id)) return undefined;
        const entry: SessionRun = {
          runId: run.id, agent: run.agent, agentVersion: run.agentVersion, status: 'queued',
          input: summarize(input ?? null), output: null, error: null, createdAt: run.createdAt, endedAt: null,
        };
        return [...doc.runs, entry].sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0)).slice(-MAX_SESSION_RUNS);
      });
    } catch (err) {
      this.logger.warn({ err, tenant, sessionId, runId: run.id }, 'session history unavailable: the run goes on without its admission recorded');
    }
  }

  /** A run of this session ended. Never throws. */
  async recordEnd(tenant: string, sessionId: string, runId: string, end: { status: RunStatus; output?: JsonValue | null; error?: { code: string; message: string } | null; at: string }): Promise<void> {
    try {
      await this.mutate(tenant, sessionId, (doc) => {
        const i = doc.runs.findIndex((r) => r.runId === runId);
        if (i < 0 || TERMINAL.has(doc.runs[i].status)) return undefined;
        const runs = [...doc.runs];
        runs[i] = {
          ...runs[i], status: end.status, endedAt: end.at,
          output: end.status === 'completed' ? summarize(end.output ?? null) : null,
          error: end.status === 'failed' && end.error ? { code: end.error.code, message: end.error.message.slice(0, SUMMARY_CHARS) } : null,
        };
        return runs;
      });
    } catch (err) {
      this.logger.warn({ err, tenant, sessionId, runId }, 'session history unavailable: the end of a run was not recorded');
    }
  }

  /**
   * The session's runs in order. Runs not yet recorded as ended are checked against the journal
   * (the source of truth), and what it says is written back, so a missed terminal event heals on
   * the next read.
   */
  async get(tenant: string, sessionId: string): Promise<SessionView> {
    if (!isTenantId(tenant) || !SESSION_ID.test(sessionId)) throw notFound(`session ${sessionId}`);
    const cur = await this.store.forTenant(tenant).sessions.get(sessionId);
    if (!cur) throw notFound(`session ${sessionId}`);
    let doc = cur.value;
    const open = doc.runs.filter((r) => !TERMINAL.has(r.status));
    if (open.length) {
      const states = await Promise.all(open.map((r) => this.journal.load({ tenantId: tenant, runId: r.runId }).catch(() => null)));
      const runs = doc.runs.map((r) => {
        const s = states[open.indexOf(r)];
        if (!s || s.lastSeq === 0) return r;
        return {
          ...r, status: s.status,
          output: s.status === 'completed' ? summarize(s.output) : null,
          error: s.status === 'failed' && s.error ? { code: s.error.code, message: s.error.message.slice(0, SUMMARY_CHARS) } : null,
          endedAt: TERMINAL.has(s.status) ? s.updatedAt : null,
        };
      });
      doc = { ...doc, runs };
      for (let i = 0; i < open.length; i++) {
        const s = states[i];
        if (s && TERMINAL.has(s.status)) await this.recordEnd(tenant, sessionId, open[i].runId, { status: s.status, output: s.output, error: s.error, at: s.updatedAt ?? new Date().toISOString() });
      }
    }
    return doc;
  }

  /**
   * Reads the session, applies `change` to its runs (undefined: nothing to write) and writes at the
   * read revision (0 when there is none, or it expired: it starts over); retries when another writer
   * got there first. The store stamps `updatedAt` and restarts the TTL.
   */
  private async mutate(tenant: string, sessionId: string, change: (doc: Pick<SessionDocument, 'runs' | 'createdAt'>) => SessionRun[] | undefined): Promise<void> {
    if (!isTenantId(tenant) || !SESSION_ID.test(sessionId)) return;
    const sessions = this.store.forTenant(tenant).sessions;
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      const cur = await sessions.get(sessionId);
      const doc = cur?.value ?? { runs: [], createdAt: new Date().toISOString() };
      const runs = change(doc);
      if (!runs) return;
      if (await sessions.put({ sessionId, runs, createdAt: doc.createdAt }, cur?.revision ?? 0)) return;
    }
    throw new Error(`session ${sessionId} is too contended`);
  }
}

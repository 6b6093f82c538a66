import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, isTenantId, notFound, SESSION_ID, type JsonValue, type RunStatus } from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { Journal } from '#libs/journal';
import { CONFIG, LOGGER, NATS, openBucket } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';

/** One run of a session, as the session history shows it. */
export interface SessionRun {
  runId: string;
  agent: string;
  agentVersion: string;
  status: RunStatus;
  /** The run's input, as compact JSON cut to SUMMARY_CHARS. */
  input: string | null;
  /** The output of a completed run, summarised the same way. */
  output: string | null;
  error: { code: string; message: string } | null;
  createdAt: string;
  endedAt: string | null;
}

interface SessionDoc {
  sessionId: string;
  tenantId: string;
  runs: SessionRun[];
  createdAt: string;
  updatedAt: string;
}

export interface SessionView extends SessionDoc {
  /** When the session is forgotten unless another run is added or ends before (sliding TTL). */
  expiresAt: string;
}

export const SUMMARY_CHARS = 500;
/** Runs kept per session (the oldest are dropped first). */
export const MAX_SESSION_RUNS = 500;
const TERMINAL = new Set<string>(['completed', 'failed', 'cancelled']);
const MAX_CAS_ATTEMPTS = 20;
const enc = new TextEncoder();
const dec = new TextDecoder();
const isCasFailure = (e: unknown): boolean => /wrong last sequence|key exists|10071/i.test(String((e as Error)?.message ?? ''));

/** Compact JSON of a value cut to `max` characters (an ellipsis marks the cut). */
export function summarize(v: JsonValue | null | undefined, max = SUMMARY_CHARS): string | null {
  if (v === undefined || v === null) return null;
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * Conversation history per session: the runs started with the same `sessionId`, in order, with
 * their status and input/output summaries. One JSON document per session in JetStream KV
 * (`am_session_runs`, `<tenant>.<sessionId>`), written with compare-and-set on admission and, for
 * the end of a run, when the session is read: its runs not yet recorded as ended are looked up in
 * the journal (the source of truth) and what it says is written back, once per run.
 *
 * Expiry: the bucket's max_age is the session TTL (AGENTMESH_SESSION_TTL, default 24 h). nats-server
 * 2.9 has no per-key TTL, so expiry is bucket-wide: a session is forgotten one TTL after its last
 * write (each write replaces the key's only revision, restarting its age).
 *
 * Graceful degradation: recording never fails a run. When the store is unavailable the run goes
 * on, the failure is logged, and a read later fills in what the journal knows.
 */
@Injectable()
export class SessionsService implements OnModuleInit {
  private kv!: KV;
  private journal!: Journal;

  constructor(@Inject(NATS) private readonly nc: NatsConnection, @Inject(CONFIG) private readonly config: AppConfig, @Inject(LOGGER) private readonly logger: Logger) {}

  async onModuleInit(): Promise<void> {
    this.kv = await openBucket(this.nc, BUCKETS.sessionRuns);
    this.journal = await Journal.open(this.nc);
  }

  /** A run was admitted with this session. Never throws. */
  async recordAdmission(tenant: string, sessionId: string, run: { id: string; agent: string; agentVersion: string; createdAt: string }, input: JsonValue | undefined): Promise<void> {
    try {
      await this.mutate(tenant, sessionId, (doc, now) => {
        if (doc.runs.some((r) => r.runId === run.id)) return undefined;
        const entry: SessionRun = {
          runId: run.id, agent: run.agent, agentVersion: run.agentVersion, status: 'queued',
          input: summarize(input ?? null), output: null, error: null, createdAt: run.createdAt, endedAt: null,
        };
        const runs = [...doc.runs, entry].sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0)).slice(-MAX_SESSION_RUNS);
        return { ...doc, runs, updatedAt: now };
      });
    } catch (err) {
      this.logger.warn({ err, tenant, sessionId, runId: run.id }, 'session history unavailable: the run goes on without its admission recorded');
    }
  }

  /** A run of this session ended. Never throws. */
  async recordEnd(tenant: string, sessionId: string, runId: string, end: { status: RunStatus; output?: JsonValue | null; error?: { code: string; message: string } | null; at: string }): Promise<void> {
    try {
      await this.mutate(tenant, sessionId, (doc, now) => {
        const i = doc.runs.findIndex((r) => r.runId === runId);
        if (i < 0 || TERMINAL.has(doc.runs[i].status)) return undefined;
        const runs = [...doc.runs];
        runs[i] = {
          ...runs[i], status: end.status, endedAt: end.at,
          output: end.status === 'completed' ? summarize(end.output ?? null) : null,
          error: end.status === 'failed' && end.error ? { code: end.error.code, message: end.error.message.slice(0, SUMMARY_CHARS) } : null,
        };
        return { ...doc, runs, updatedAt: now };
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
    const cur = await this.read(tenant, sessionId);
    if (!cur.doc) throw notFound(`session ${sessionId}`);
    let doc = cur.doc;
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
    return { ...doc, expiresAt: new Date(Date.parse(cur.doc.updatedAt) + this.config.sessionTtlMs).toISOString() };
  }

  private key(tenant: string, sessionId: string): string {
    return `${tenant}.${sessionId}`;
  }

  private async read(tenant: string, sessionId: string): Promise<{ doc: SessionDoc | null; revision: number }> {
    const e = await this.kv.get(this.key(tenant, sessionId));
    if (!e) return { doc: null, revision: 0 };
    if (e.operation !== 'PUT' || e.length === 0) return { doc: null, revision: e.revision };
    return { doc: JSON.parse(dec.decode(e.value)) as SessionDoc, revision: e.revision };
  }

  private async mutate(tenant: string, sessionId: string, change: (doc: SessionDoc, now: string) => SessionDoc | undefined): Promise<void> {
    if (!isTenantId(tenant) || !SESSION_ID.test(sessionId)) return;
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      const now = new Date().toISOString();
      const cur = await this.read(tenant, sessionId);
      const doc = cur.doc ?? { sessionId, tenantId: tenant, runs: [], createdAt: now, updatedAt: now };
      const next = change(doc, now);
      if (!next) return;
      try {
        const value = enc.encode(JSON.stringify(next));
        if (cur.revision === 0) await this.kv.create(this.key(tenant, sessionId), value);
        else await this.kv.update(this.key(tenant, sessionId), value, cur.revision);
        return;
      } catch (err) {
        if (!isCasFailure(err)) throw err;
      }
    }
    throw new Error(`session ${sessionId} is too contended`);
  }
}

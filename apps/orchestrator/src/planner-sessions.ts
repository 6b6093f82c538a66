import { Inject, Injectable } from '@nestjs/common';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, PLANNER_LIMITS, type JsonValue, type SessionContext, type SessionTurn } from '#libs/contracts';
import type { RunState } from '#libs/engine';
import { LOGGER, NATS, openBucket } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';

/** What the orchestrator keeps of a session for its planners (KV `am_planner_sessions`, `<tenant>.<sessionId>`). */
export interface PlannerSessionDoc {
  sessionId: string;
  /** Completed runs of the session, oldest first (at most PLANNER_LIMITS.maxSessionTurns). */
  turns: SessionTurn[];
  /** Planner memory of the session. */
  memory: Record<string, JsonValue>;
  updatedAt: string;
}

/** Bytes of a session's turns kept at most (the oldest go first): the record goes into `run.started`. */
const MAX_TURN_BYTES = 256 * 1024;
const MAX_CAS_ATTEMPTS = 20;
const enc = new TextEncoder();
const dec = new TextDecoder();
const isCasFailure = (e: unknown): boolean => /wrong last sequence|key exists|10071/i.test(String((e as Error)?.message ?? ''));

/**
 * The sessions of non-graph planners: earlier turns (input and output of completed runs) and the
 * planner memory. Read when a run starts (recorded in its `run.started`, so replay and recovery
 * use what was read) and written when a run completes, just before its `run.completed` is
 * appended: the turn is added (once per run id) and the run's memory writes are applied.
 * A failed or cancelled run's memory writes are dropped.
 *
 * Expiry: the bucket's max_age is the session TTL (AGENTMESH_SESSION_TTL), bucket-wide on
 * nats-server 2.9: a session is forgotten one TTL after its last completed run.
 *
 * Graceful degradation: a store that cannot be read starts the run with an empty session (marked
 * `unavailable` in `run.started`); one that cannot be written loses that turn, not the run.
 */
@Injectable()
export class PlannerSessions {
  private kv?: KV;

  constructor(@Inject(NATS) private readonly nc: NatsConnection, @Inject(LOGGER) private readonly logger: Logger) {}

  private async bucket(): Promise<KV> {
    this.kv ??= await openBucket(this.nc, BUCKETS.plannerSessions);
    return this.kv;
  }

  /** The session as a run starts with it. Never throws. */
  async read(tenantId: string, sessionId: string): Promise<SessionContext> {
    try {
      const doc = (await this.get(tenantId, sessionId)).doc;
      return { turns: doc?.turns ?? [], memory: doc?.memory ?? {} };
    } catch (err) {
      this.logger.warn({ err, tenantId, sessionId }, 'planner session store unavailable: the run starts without its session');
      return { turns: [], memory: {}, unavailable: true };
    }
  }

  /** Adds the completed run as a turn and applies its memory writes. Never throws. */
  async commit(s: RunState, output: JsonValue, at: string): Promise<void> {
    const sessionId = s.sessionId;
    if (!sessionId) return;
    const writes = s.planner?.memory ?? {};
    try {
      for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
        const cur = await this.get(s.tenantId, sessionId);
        const doc = cur.doc ?? { sessionId, turns: [], memory: {}, updatedAt: at };
        if (doc.turns.some((t) => t.runId === s.runId)) return; // committed already (a redelivered command)
        const memory = { ...doc.memory };
        for (const [k, v] of Object.entries(writes)) {
          if (v === null) delete memory[k];
          else memory[k] = v;
        }
        const next: PlannerSessionDoc = { sessionId, turns: trimTurns([...doc.turns, { runId: s.runId, input: s.input, output, at }]), memory, updatedAt: at };
        try {
          const kv = await this.bucket();
          const value = enc.encode(JSON.stringify(next));
          if (cur.revision === 0) await kv.create(key(s.tenantId, sessionId), value);
          else await kv.update(key(s.tenantId, sessionId), value, cur.revision);
          return;
        } catch (err) {
          if (!isCasFailure(err)) throw err;
        }
      }
      throw new Error(`session ${sessionId} is too contended`);
    } catch (err) {
      this.logger.warn({ err, tenantId: s.tenantId, sessionId, runId: s.runId }, 'planner session store unavailable: the run completes without its turn recorded');
    }
  }

  private async get(tenantId: string, sessionId: string): Promise<{ doc: PlannerSessionDoc | null; revision: number }> {
    const e = await (await this.bucket()).get(key(tenantId, sessionId));
    if (!e) return { doc: null, revision: 0 };
    if (e.operation !== 'PUT' || e.length === 0) return { doc: null, revision: e.revision };
    return { doc: JSON.parse(dec.decode(e.value)) as PlannerSessionDoc, revision: e.revision };
  }
}

const key = (tenantId: string, sessionId: string): string => `${tenantId}.${sessionId}`;

function trimTurns(turns: SessionTurn[]): SessionTurn[] {
  let out = turns.slice(-PLANNER_LIMITS.maxSessionTurns);
  while (out.length > 1 && enc.encode(JSON.stringify(out)).length > MAX_TURN_BYTES) out = out.slice(1);
  return out;
}

import { errors as natsErrors, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import {
  HEADERS, isCompatiblePlannerProtocol, PLANNER_LIMITS, PLANNER_PROTOCOL, plannerSubject,
  type JsonValue, type PlannerDecidedData, type PlannerReply, type PlannerRequest,
} from '#libs/contracts';
import { RetryLaterError } from '#libs/messaging';
import { currentTraceparent, type Logger } from '#libs/telemetry';

const dec = new TextDecoder();
const enc = new TextEncoder();
/** How soon a run waiting for a planner with no instance up asks again. */
const NO_RESPONDERS_RETRY_MS = 1000;
const MAX_MESSAGE_CHARS = 2000;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Asks external planners (planner.v1) for their next decision over core NATS request/reply, and
 * turns every answer into what the journal records (`planner.decided`):
 *
 * - a decision: checked (shape, sizes, memory) and recorded as it is;
 * - the planner failed (it threw), answered garbage, or speaks an incompatible protocol: a `fail`
 *   decision (the run fails `planner_error` with the reason);
 * - no instance answers (no responders), it timed out, or it asked to be asked later:
 *   RetryLaterError, the run waits and is driven again when the command comes back.
 */
export class PlannerClient {
  private readonly warned = new Map<string, number>();

  constructor(private readonly nc: NatsConnection, private readonly timeoutMs: number, private readonly logger: Logger) {}

  async ask(req: PlannerRequest): Promise<PlannerDecidedData> {
    const h = natsHeaders();
    const tp = currentTraceparent();
    if (tp) h.set(HEADERS.traceparent, tp);
    h.set(HEADERS.tenant, req.tenantId);
    let raw: Uint8Array;
    try {
      raw = (await this.nc.request(plannerSubject(req.tenantId, req.planner), enc.encode(JSON.stringify(req)), { timeout: this.timeoutMs, headers: h })).data;
    } catch (e) {
      const noOne = e instanceof natsErrors.NoRespondersError || (e as Error).name === 'NoRespondersError';
      const why = noOne ? 'no instance of it is running' : e instanceof natsErrors.TimeoutError ? `it did not answer within ${this.timeoutMs} ms` : (e as Error).message;
      this.warnSometimes(req, `planner "${req.planner}" cannot be asked (${why}); the run waits and asks again`);
      throw new RetryLaterError(`planner "${req.planner}" cannot be asked: ${why}`, NO_RESPONDERS_RETRY_MS, { cause: e });
    }
    const base = { decisionKey: req.decisionKey, planner: req.planner };
    const fail = (protocol: string, message: string): PlannerDecidedData => ({ ...base, protocol, decision: { kind: 'fail', message: clip(message) } });
    if (raw.length > PLANNER_LIMITS.maxReplyBytes) return fail('unknown', `planner "${req.planner}" answered with ${raw.length} bytes, more than ${PLANNER_LIMITS.maxReplyBytes}`);
    let reply: unknown;
    try {
      reply = JSON.parse(dec.decode(raw));
    } catch {
      return fail('unknown', `planner "${req.planner}" answered with something that is not JSON`);
    }
    if (!isRecord(reply)) return fail('unknown', `planner "${req.planner}" answered with something that is not a planner.v1 reply`);
    const protocol = typeof reply.protocol === 'string' ? reply.protocol.slice(0, 64) : 'unknown';
    if (!isCompatiblePlannerProtocol(reply.protocol)) {
      return fail(protocol, `planner "${req.planner}" speaks ${protocol === 'unknown' ? 'an unknown protocol' : protocol}, which this orchestrator (${PLANNER_PROTOCOL}) does not accept: deploy a planner built on a compatible SDK`);
    }
    const r = reply as PlannerReply;
    if (r.ok === false) {
      const err: Record<string, unknown> = isRecord(r.error) ? r.error : { code: 'planner_failed', message: 'no reason given' };
      const message = typeof err.message === 'string' ? err.message : 'no reason given';
      if (err.code === 'retry_later') {
        const ms = err.retryAfterMs;
        const after = typeof ms === 'number' && ms > 0 ? Math.min(ms, 60_000) : NO_RESPONDERS_RETRY_MS;
        throw new RetryLaterError(`planner "${req.planner}" asked to be asked later: ${clip(message)}`, after);
      }
      if (err.code === 'incompatible_protocol') return fail(protocol, `planner "${req.planner}" does not accept ${PLANNER_PROTOCOL} requests: ${message}`);
      return fail(protocol, message);
    }
    if (r.ok !== true) return fail(protocol, `planner "${req.planner}" answered with neither a decision nor an error`);
    const problem = decisionProblem(r.decision) ?? memoryProblem(req, r.memory) ?? emitProblem(r.emit);
    if (problem) return fail(protocol, `planner "${req.planner}" answered with an invalid decision: ${problem}`);
    return {
      ...base, protocol, decision: r.decision,
      ...(r.memory && Object.keys(r.memory).length > 0 ? { memory: r.memory } : {}),
      ...(r.emit && r.emit.length > 0 ? { emit: r.emit } : {}),
    };
  }

  /** One warning per planner and tenant every 10 s (a down planner is asked again and again). */
  private warnSometimes(req: PlannerRequest, msg: string): void {
    const key = `${req.tenantId}/${req.planner}`;
    const now = Date.now();
    if (now - (this.warned.get(key) ?? 0) < 10_000) return;
    this.warned.set(key, now);
    this.logger.warn({ planner: req.planner, runId: req.runId }, msg);
  }
}

const clip = (s: string): string => (s.length > MAX_MESSAGE_CHARS ? `${s.slice(0, MAX_MESSAGE_CHARS - 1)}…` : s);

/** What is wrong with a decision, or null. */
export function decisionProblem(d: unknown): string | null {
  if (!isRecord(d)) return 'decision is missing';
  switch (d.kind) {
    case 'call_tool':
      if (typeof d.tool !== 'string' || d.tool === '') return 'call_tool needs a tool name';
      if (!('args' in d)) return 'call_tool needs args';
      if (d.id !== undefined && (typeof d.id !== 'string' || d.id.length > 128)) return 'call_tool.id must be a string of at most 128 characters';
      if (d.requireApproval !== undefined && typeof d.requireApproval !== 'boolean') return 'call_tool.requireApproval must be a boolean';
      return null;
    case 'call_llm':
      if (!Array.isArray(d.messages) || d.messages.length === 0) return 'call_llm needs messages';
      if (!d.messages.every((m) => isRecord(m) && typeof m.role === 'string')) return 'call_llm messages need a role';
      if (d.tools !== undefined && !(Array.isArray(d.tools) && d.tools.every((t) => typeof t === 'string'))) return 'call_llm.tools must be tool names';
      if (d.hint !== undefined && d.hint !== 'easy' && d.hint !== 'hard') return 'call_llm.hint must be easy or hard';
      if (d.model !== undefined && (typeof d.model !== 'string' || d.model === '')) return 'call_llm.model must be a model name';
      if (d.maxTokens !== undefined && !(Number.isInteger(d.maxTokens) && (d.maxTokens as number) > 0)) return 'call_llm.maxTokens must be a positive integer';
      return null;
    case 'emit':
    case 'finish':
      return 'output' in d ? null : `${d.kind} needs an output`;
    case 'fail':
      if (typeof d.message !== 'string') return 'fail needs a message';
      if (d.code !== undefined && d.code !== 'planner_error' && d.code !== 'invalid_input') return 'fail.code must be planner_error or invalid_input';
      return null;
    default:
      return `unknown decision kind ${JSON.stringify(d.kind)}`;
  }
}

function memoryProblem(req: PlannerRequest, m: unknown): string | null {
  if (m === undefined) return null;
  if (!isRecord(m)) return 'memory must be an object of key → value (null deletes)';
  const merged: Record<string, JsonValue> = { ...req.session.memory };
  for (const [k, v] of Object.entries(m)) {
    if (k === '' || k.length > PLANNER_LIMITS.maxMemoryKey) return `memory key "${k.slice(0, 40)}" must have 1 to ${PLANNER_LIMITS.maxMemoryKey} characters`;
    if (v === null) delete merged[k];
    else merged[k] = v as JsonValue;
  }
  const bytes = enc.encode(JSON.stringify(merged)).length;
  return bytes > PLANNER_LIMITS.maxMemoryBytes ? `the session memory would hold ${bytes} bytes, more than ${PLANNER_LIMITS.maxMemoryBytes}` : null;
}

function emitProblem(e: unknown): string | null {
  if (e === undefined) return null;
  return Array.isArray(e) && e.every((x) => typeof x === 'string') ? null : 'emit must be a list of strings';
}


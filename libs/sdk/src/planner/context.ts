import type { ChatMessage, JsonValue, ModelHint, PlannerDecision, PlannerRequest } from '#libs/contracts';

/**
 * The session memory of the run's session (key → JSON value), shared by the session's runs.
 *
 * Replay behaviour: reads see the memory as the run started (recorded by the platform in the
 * run's journal) with this run's own earlier writes applied, never a live store, so a decision
 * asked again reads the same values. Writes are returned with the decision and recorded with it;
 * they take effect for the next runs of the session when this run completes (a failed or
 * cancelled run's writes are dropped). Values must be JSON; at most 64 KiB in all.
 */
export interface SessionMemory {
  get<T extends JsonValue = JsonValue>(key: string): T | undefined;
  has(key: string): boolean;
  /** Records a write, returned with the decision. */
  set(key: string, value: JsonValue): void;
  /** Records a delete, returned with the decision. */
  delete(key: string): void;
  /** Every key and value as this decision sees them. */
  entries(): Array<[string, JsonValue]>;
}

/** What a planner's `decide` gets besides the view: memory, streaming, and the decisions it may return. */
export interface PlannerContext {
  readonly tenantId: string;
  readonly runId: string;
  readonly sessionId: string | undefined;
  /** Identifies this decision; the same question asked again (recovery) has the same key. */
  readonly decisionKey: string;
  readonly memory: SessionMemory;
  /**
   * Streams a piece of partial output to the run's watchers (`llm.delta` on its event stream).
   * Replay behaviour: the pieces are returned with the decision and recorded with it, so a
   * decision never emits twice once recorded.
   */
  emit(text: string): void;
  /** Decision: call one of the agent's tools (step cap, loop detection, risk tiers and approvals apply). */
  callTool(tool: string, args: JsonValue, opts?: { id?: string; requireApproval?: boolean }): PlannerDecision;
  /** Decision: ask a human to approve this tool call first, whatever its tier (`approval_denied` ends the run). */
  askApproval(tool: string, args: JsonValue, opts?: { id?: string }): PlannerDecision;
  /**
   * Decision: call the LLM through the platform's inference router (budget reserved and settled
   * for you). The reply arrives as the next `llm` step of the view: the model is never called
   * twice for one decision.
   */
  callLlm(opts: LlmCallOptions): PlannerDecision;
  /** Decision: output a partial result now, then be asked again. */
  partial(output: JsonValue): PlannerDecision;
  /** Decision: end the run `completed` with this output. */
  finish(output: JsonValue): PlannerDecision;
  /** Decision: end the run `failed` (`planner_error`, or `invalid_input` for input the planner cannot use). */
  fail(message: string, code?: 'planner_error' | 'invalid_input'): PlannerDecision;
}

export interface LlmCallOptions {
  messages: ChatMessage[];
  /** Agent tools the model may call (its tool calls come back in the reply; act on them yourself). */
  tools?: string[];
  /** `easy` steps go to the cheap model, `hard` ones to the frontier model. */
  hint?: ModelHint;
  /** An exact model instead. */
  model?: string;
  maxTokens?: number;
  temperature?: number;
}

/** The decisions, as plain functions (the same as the context's). */
export const decisions = {
  callTool: (tool: string, args: JsonValue, opts: { id?: string; requireApproval?: boolean } = {}): PlannerDecision =>
    ({ kind: 'call_tool', tool, args, ...(opts.id !== undefined ? { id: opts.id } : {}), ...(opts.requireApproval ? { requireApproval: true } : {}) }),
  askApproval: (tool: string, args: JsonValue, opts: { id?: string } = {}): PlannerDecision =>
    ({ kind: 'call_tool', tool, args, ...(opts.id !== undefined ? { id: opts.id } : {}), requireApproval: true }),
  callLlm: (o: LlmCallOptions): PlannerDecision => ({
    kind: 'call_llm', messages: o.messages,
    ...(o.tools ? { tools: o.tools } : {}), ...(o.hint ? { hint: o.hint } : {}), ...(o.model ? { model: o.model } : {}),
    ...(o.maxTokens !== undefined ? { maxTokens: o.maxTokens } : {}), ...(o.temperature !== undefined ? { temperature: o.temperature } : {}),
  }),
  partial: (output: JsonValue): PlannerDecision => ({ kind: 'emit', output }),
  finish: (output: JsonValue): PlannerDecision => ({ kind: 'finish', output }),
  fail: (message: string, code?: 'planner_error' | 'invalid_input'): PlannerDecision => ({ kind: 'fail', message, ...(code ? { code } : {}) }),
};

/** The context of one decision, and what it collected (memory writes, emitted text). */
export function createContext(req: PlannerRequest): { ctx: PlannerContext; writes: Record<string, JsonValue | null>; emitted: string[] } {
  const view = new Map<string, JsonValue>(Object.entries(req.session?.memory ?? {}));
  const writes: Record<string, JsonValue | null> = {};
  const emitted: string[] = [];
  const memory: SessionMemory = {
    get: <T extends JsonValue = JsonValue>(key: string) => view.get(key) as T | undefined,
    has: (key) => view.has(key),
    set: (key, value) => {
      if (typeof key !== 'string' || key === '') throw new TypeError('memory keys are non-empty strings');
      if (value === undefined) throw new TypeError(`memory.set("${key}"): the value must be JSON (use delete to remove a key)`);
      view.set(key, value);
      writes[key] = value;
    },
    delete: (key) => {
      if (!view.has(key) && !(key in writes)) return;
      view.delete(key);
      writes[key] = null;
    },
    entries: () => [...view.entries()],
  };
  const ctx: PlannerContext = {
    tenantId: req.tenantId,
    runId: req.runId,
    sessionId: req.sessionId,
    decisionKey: req.decisionKey,
    memory,
    emit: (text) => {
      if (typeof text !== 'string') throw new TypeError('emit takes text');
      if (text !== '') emitted.push(text);
    },
    ...decisions,
  };
  return { ctx, writes, emitted };
}

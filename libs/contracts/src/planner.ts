/**
 * The contract between the orchestrator and planners: the builtin names, the session context a
 * run starts with, and `planner.v1`, the request/reply protocol of external planners (teams'
 * own reasoning engines, written with the planner SDK in libs/sdk).
 *
 * Transport: core NATS request/reply on `plannerSubject(tenant, name)` =
 * `planner.v1.<tenant>.<name>`; planner instances subscribe to `planner.v1.*.<name>` (or one
 * tenant's subject) in the queue group `plannerQueueGroup(name)`, so several instances share the
 * work. The orchestrator asks once per decision; the answer is recorded in the run's journal as
 * `planner.decided` before anything is acted on, so recovery and replay never ask again.
 */
import type { AgentLimits, JsonValue, RiskTier } from './domain.js';
import type { ChatMessage, ChatToolCall, ModelHint } from './inference.js';

/** Planners built into the orchestrator; any other agent `planner` names an external planner. */
export const BUILTIN_PLANNERS = ['graph', 'react'] as const;
export type BuiltinPlannerName = (typeof BUILTIN_PLANNERS)[number];
export const isBuiltinPlanner = (name: string): name is BuiltinPlannerName => (BUILTIN_PLANNERS as readonly string[]).includes(name);

/** The protocol this orchestrator speaks. A reply naming another major version is refused (`planner_error`). */
export const PLANNER_PROTOCOL = 'planner.v1';
/**
 * Whether a planner's answer is compatible with PLANNER_PROTOCOL: `planner.v1` itself, or a
 * revision of it (`planner.v1.<n>`: additive changes only).
 */
export const isCompatiblePlannerProtocol = (p: unknown): boolean => typeof p === 'string' && (p === PLANNER_PROTOCOL || p.startsWith(`${PLANNER_PROTOCOL}.`));

/** One earlier completed run of the session (a turn of the conversation). */
export interface SessionTurn {
  runId: string;
  input: JsonValue;
  output: JsonValue;
  /** When the run completed. */
  at: string;
}

/**
 * The session a run starts with, read by the orchestrator when the run starts and recorded in
 * `run.started` (so replay sees the same): earlier turns (completed runs, oldest first) and the
 * planner memory of the session. Present for runs of non-graph planners that have a `sessionId`.
 */
export interface SessionContext {
  turns: SessionTurn[];
  memory: Record<string, JsonValue>;
  /** The session store could not be read: the run went on without its history (graceful degradation). */
  unavailable?: boolean;
}

/** A tool of the agent as a planner sees it (definition from the tool registry, pinned version). */
export interface PlannerToolView {
  name: string;
  version: string;
  riskTier: RiskTier;
  description?: string;
  inputSchema?: Record<string, JsonValue>;
}

/** The assistant message of an LLM step (OpenAI chat format). */
export interface AssistantMessage {
  role: 'assistant';
  content: string | null;
  tool_calls?: ChatToolCall[];
}

/** One finished step of the run, with its outcome. */
export type PlannerStepView =
  | {
    kind: 'tool'; step: number; tool: string; args: JsonValue;
    /** The planner's id for the call (`call_tool.id`), or the LLM's tool-call id under `react`. */
    id?: string;
    ok: boolean; result?: JsonValue; error?: { code: string; message: string };
  }
  | { kind: 'llm'; step: number; model?: string; message: AssistantMessage; usage: { inputTokens: number; outputTokens: number } };

/** `planner.v1` request: everything a planner may base its next decision on. */
export interface PlannerRequest {
  protocol: typeof PLANNER_PROTOCOL;
  /** The planner name the agent gave. */
  planner: string;
  /**
   * Identifies this decision: `<runId>:d<n>`. The same question asked again (the orchestrator
   * died before recording the answer) carries the same key.
   */
  decisionKey: string;
  tenantId: string;
  runId: string;
  sessionId?: string;
  agent: { name: string; version: string; model?: string; instructions?: string; limits: AgentLimits };
  tools: PlannerToolView[];
  input: JsonValue;
  /** Earlier turns of the session and its memory (with this run's own writes applied). */
  session: { turns: SessionTurn[]; memory: Record<string, JsonValue> };
  /** Finished steps of this run, in order. */
  steps: PlannerStepView[];
  /** Partial outputs this run emitted so far, in order. */
  emitted: JsonValue[];
  /** Steps started so far, and the most the run may start. */
  step: number;
  maxSteps: number;
}

/** What a planner decides. */
export type PlannerDecision =
  /** Call a tool of the agent (risk tiers, approvals, step cap and loop detection apply). `requireApproval` asks a human first whatever the tier. */
  | { kind: 'call_tool'; tool: string; args: JsonValue; id?: string; requireApproval?: boolean }
  /**
   * Call the LLM through the inference-router (budget reserved and settled by the platform). The
   * reply comes back as an `llm` step. `tools`: names of agent tools offered to the model (none by default).
   */
  | { kind: 'call_llm'; messages: ChatMessage[]; tools?: string[]; hint?: ModelHint; model?: string; maxTokens?: number; temperature?: number }
  /** Emit a partial output (a `llm.delta` on the run's event stream), then be asked again. */
  | { kind: 'emit'; output: JsonValue }
  /** End the run `completed` with this output. */
  | { kind: 'finish'; output: JsonValue }
  /** End the run `failed` (`planner_error` unless `invalid_input`). */
  | { kind: 'fail'; message: string; code?: 'planner_error' | 'invalid_input' };

export type PlannerDecisionKind = PlannerDecision['kind'];

/** Why a planner did not decide. */
export type PlannerErrorCode =
  /** The planner failed (it threw): the run fails `planner_error` with the message. */
  | 'planner_failed'
  /** The planner cannot decide now (its own dependency is down): ask again later; the run waits. */
  | 'retry_later'
  /** The request's protocol is not one the planner speaks. */
  | 'incompatible_protocol'
  /** The request was malformed. */
  | 'bad_request';

/** `planner.v1` reply. `protocol` is the protocol the planner speaks. */
export type PlannerReply =
  | {
    protocol: string;
    ok: true;
    decision: PlannerDecision;
    /** Session memory writes (null deletes a key); they take effect for the session when the run completes. */
    memory?: Record<string, JsonValue | null>;
    /** Partial outputs emitted while deciding (SDK `ctx.emit`), shown as `llm.delta` events. */
    emit?: string[];
  }
  | { protocol: string; ok: false; error: { code: PlannerErrorCode; message: string; retryAfterMs?: number } };

/** Payload of the `planner.decided` journal event: an external planner's answer, recorded before it is acted on. */
export interface PlannerDecidedData {
  decisionKey: string;
  planner: string;
  /** The protocol the planner answered with. */
  protocol: string;
  decision: PlannerDecision;
  memory?: Record<string, JsonValue | null>;
  emit?: string[];
}

/** Limits on what a planner may answer (the orchestrator refuses more with `planner_error`). */
export const PLANNER_LIMITS = Object.freeze({
  /** Bytes of a reply's JSON. */
  maxReplyBytes: 512 * 1024,
  /** Bytes of the session memory (JSON of all keys and values). */
  maxMemoryBytes: 64 * 1024,
  /** Characters of a memory key. */
  maxMemoryKey: 256,
  /** Answers in a row that start no step (`emit`), before the run fails `loop_detected`. */
  maxDecisionsWithoutStep: 64,
  /** Earlier turns kept per session. */
  maxSessionTurns: 50,
});

/** Keys of planner decisions: one per question, stable across recovery. */
export const decisionKeyOf = (runId: string, n: number): string => `${runId}:d${n}`;

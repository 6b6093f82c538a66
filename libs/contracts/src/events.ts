import type { AgentSpec, Cost, JsonValue, PinnedTool, RiskTier, RunError } from './domain.js';
import type { ModelHint } from './inference.js';
import type { PlannerDecidedData, SessionContext } from './planner.js';

/** Schema version of journal payloads; carried in the `am-schema` header of every event. */
export const JOURNAL_SCHEMA_VERSION = 1;

/** Payload (`data`) of each journal event type. */
export interface JournalEventData {
  'run.created': {
    agent: AgentSpec;
    input: JsonValue;
    sessionId?: string;
    metadata?: Record<string, string>;
  };
  /**
   * `session`: the session's earlier turns and planner memory, read when the run started (runs of
   * non-graph planners with a `sessionId`); replay uses what is recorded here.
   */
  'run.started': { tools: Record<string, PinnedTool>; session?: SessionContext };
  /**
   * A step begins: a tool call (`toolCallId`: the LLM tool call it answers, under `react`) or an
   * LLM call (`model`: the agent's model or `auto`, the router choosing by `hint`).
   */
  'step.started': { kind: 'tool'; stepId?: string; tool: string; args: JsonValue; toolCallId?: string } | { kind: 'llm'; model: string; hint?: ModelHint };
  'tool.called': { callKey: string; tool: string; version: string; riskTier: RiskTier };
  'tool.completed': { callKey: string; result: JsonValue; durationMs: number; resultRef?: string };
  'tool.failed': { callKey: string; error: { code: string; message: string; details?: JsonValue }; durationMs: number };
  'llm.called': { callKey: string; model: string; replica?: string };
  /** Streamed text (coalesced), a preview: `llm.completed` is what counts. Also a planner's partial outputs. */
  'llm.delta': { callKey: string; text: string };
  /** `message`: the assistant message (`{role, content, tool_calls?}`); `model`/`replica`: who answered. */
  'llm.completed': {
    callKey: string; message: JsonValue; usage: { inputTokens: number; outputTokens: number }; costUsd: number;
    model?: string; replica?: string; finishReason?: string;
  };
  /** An external planner's answer (planner.v1), recorded before it is acted on. */
  'planner.decided': PlannerDecidedData;
  'approval.requested': { approvalId: string; callKey: string; tool: string; version: string; args: JsonValue; argsHash: string; riskTier: RiskTier; expiresAt: string };
  'approval.granted': { approvalId: string; by: string; reason?: string };
  'approval.denied': { approvalId: string; by: string; reason?: string };
  'approval.expired': { approvalId: string };
  'budget.reserved': { callKey: string; usd: number };
  'budget.settled': { callKey: string; usd: number };
  /** A cancel arrived while a step was in flight; the run ends `cancelled` when it lands. */
  'run.cancel_requested': { reason?: string };
  'run.completed': { output: JsonValue; cost: Cost };
  'run.failed': { error: RunError; cost: Cost };
  'run.cancelled': { reason?: string; cost: Cost };
}

export type JournalEventType = keyof JournalEventData;

export const JOURNAL_EVENT_TYPES = [
  'run.created', 'run.started', 'step.started', 'tool.called', 'tool.completed', 'tool.failed',
  'llm.called', 'llm.delta', 'llm.completed', 'approval.requested', 'approval.granted',
  'approval.denied', 'approval.expired', 'budget.reserved', 'budget.settled',
  'run.cancel_requested', 'run.completed', 'run.failed', 'run.cancelled', 'planner.decided',
] as const satisfies readonly JournalEventType[];

export const TERMINAL_EVENT_TYPES: readonly JournalEventType[] = ['run.completed', 'run.failed', 'run.cancelled'];
export const isTerminalEventType = (t: string): boolean => (TERMINAL_EVENT_TYPES as readonly string[]).includes(t);

/** An event as written: everything but the sequence, which the stream assigns. */
export interface NewJournalEvent<T extends JournalEventType = JournalEventType> {
  runId: string;
  tenantId: string;
  type: T;
  /** ISO-8601 instant, read from the clock by the writer and recorded. */
  at: string;
  step: number;
  data: JournalEventData[T];
}

/** An event as read back: `seq` is its journal (stream) sequence. */
export interface JournalEvent<T extends JournalEventType = JournalEventType> extends NewJournalEvent<T> {
  seq: number;
}

/** The discriminated union of all events, for exhaustive switches. */
export type AnyJournalEvent = { [K in JournalEventType]: JournalEvent<K> }[JournalEventType];
export type AnyNewJournalEvent = { [K in JournalEventType]: NewJournalEvent<K> }[JournalEventType];

import type { ChatMessage, JsonValue, ModelHint, PlannerStepView, SessionTurn } from '#libs/contracts';

/**
 * One LLM call as the engine decides it. The orchestrator turns it into an `inference.chat`
 * request: it adds the offered tools' definitions (from the tool registry, for the pinned
 * versions), the run's session and stream settings, and `max_tokens` when none is set here.
 */
export interface LlmRequest {
  messages: ChatMessage[];
  /** Names of pinned tools of the run offered to the model (OpenAI function tools). */
  tools: string[];
  /** An exact model; absent: the router chooses, from `hint` and its rules. */
  model?: string;
  hint?: ModelHint;
  maxTokens?: number;
  temperature?: number;
}

/** A JSON value as message text: strings as they are, anything else as compact JSON. */
export const textOf = (v: JsonValue | undefined): string => (typeof v === 'string' ? v : JSON.stringify(v ?? null));

/** Earlier turns of the session as user / assistant messages, oldest first. */
export function sessionMessages(turns: readonly SessionTurn[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (const t of turns) out.push({ role: 'user', content: textOf(t.input) }, { role: 'assistant', content: textOf(t.output) });
  return out;
}

/**
 * The run's finished steps as chat messages: each LLM step's assistant message (with its tool
 * calls), each tool step as the `tool` message answering its call (the result as JSON, or
 * `{"error": {code, message}}`).
 */
export function transcriptMessages(steps: readonly PlannerStepView[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (const e of steps) {
    if (e.kind === 'llm') {
      out.push({ role: 'assistant', content: e.message.content, ...(e.message.tool_calls ? { tool_calls: e.message.tool_calls } : {}) });
    } else {
      const content = e.ok ? textOf(e.result) : JSON.stringify({ error: e.error ?? { code: 'tool_error', message: 'the tool failed' } });
      out.push({ role: 'tool', tool_call_id: e.id ?? `step_${e.step}`, content });
    }
  }
  return out;
}

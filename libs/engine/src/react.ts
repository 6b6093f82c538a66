import type { AgentSpec, ChatMessage, ChatToolCall, JsonValue, ModelHint } from '#libs/contracts';
import { sessionMessages, textOf, transcriptMessages, type LlmRequest } from './llm.js';
import type { Planner, PlannerAction } from './planner.js';
import type { RunState } from './state.js';

/**
 * The `react` planner: an LLM tool-calling loop (OpenAI tool-call format), pure over the run state.
 *
 * - No LLM step yet, or every tool call of the last LLM reply has its outcome: call the LLM with
 *   the agent's instructions (system), the session's earlier turns, the input (user) and the run's
 *   steps so far (assistant messages and tool results), offering the agent's pinned tools.
 * - The last reply asked for tool calls: the next one not yet made becomes a tool step (the same
 *   path as graph steps: step cap, loop detection, risk tiers and approvals).
 * - The last reply asked for none: the run completes with its content as the output.
 *
 * The model's replies are recorded (`llm.completed`), so the same journal always gives the same
 * next action: recovery and replay never call the model again for a recorded reply. A tool call
 * whose arguments are not JSON is made with the raw string (the tool-runner refuses it against
 * the tool's schema and the model sees the error). Tool failures go back to the model as results.
 *
 * Model routing hint: `hard` for the first call and after a failed tool call, `easy` otherwise
 * (reading tool results and answering); an agent `model` names the model outright.
 */
export const reactPlanner: Planner = {
  next(state, agent): PlannerAction {
    const steps = state.transcript ?? [];
    let last = -1;
    for (let i = steps.length - 1; i >= 0; i--) if (steps[i].kind === 'llm') { last = i; break; }
    if (last < 0) return callLlm(state, agent, 'hard');
    const reply = steps[last];
    if (reply.kind !== 'llm') throw new Error('unreachable');
    const calls = reply.message.tool_calls ?? [];
    if (calls.length === 0) return { kind: 'finish', output: reply.message.content ?? '' };
    const after = steps.slice(last + 1);
    const made = after.filter((e) => e.kind === 'tool').length;
    if (made < calls.length) return toolCall(calls[made]);
    const failed = after.some((e) => e.kind === 'tool' && !e.ok);
    return callLlm(state, agent, failed ? 'hard' : 'easy');
  },
};

function toolCall(c: ChatToolCall): PlannerAction {
  let args: JsonValue;
  try {
    args = (c.function.arguments.trim() === '' ? {} : JSON.parse(c.function.arguments)) as JsonValue;
  } catch {
    args = c.function.arguments;
  }
  return { kind: 'call_tool', tool: c.function.name, args, toolCallId: c.id };
}

function callLlm(state: RunState, agent: AgentSpec, hint: ModelHint): PlannerAction {
  const request = reactRequest(state, agent, hint);
  return { kind: 'call_llm', request, model: agent.model ?? 'auto', hint };
}

/** The messages and tools of the react planner's next LLM call. */
export function reactRequest(state: RunState, agent: AgentSpec, hint: ModelHint): LlmRequest {
  const messages: ChatMessage[] = [];
  if (agent.instructions) messages.push({ role: 'system', content: agent.instructions });
  messages.push(...sessionMessages(state.session?.turns ?? []));
  messages.push({ role: 'user', content: textOf(state.input) });
  messages.push(...transcriptMessages(state.transcript ?? []));
  return { messages, tools: Object.keys(state.tools).sort(), ...(agent.model ? { model: agent.model } : {}), hint };
}

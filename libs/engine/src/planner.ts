import { PLANNER_LIMITS, type AgentSpec, type JsonValue, type ModelHint, type RunError } from '#libs/contracts';
import { reactPlanner } from './react.js';
import type { LlmRequest } from './llm.js';
import type { RunState } from './state.js';
import { renderTemplate, TemplateError } from './template.js';

/** What a planner wants next. Planners are pure functions of the run state. */
export type PlannerAction =
  | {
    kind: 'call_tool'; tool: string; args: JsonValue; stepId?: string;
    /** The LLM tool call this step answers (react). */
    toolCallId?: string;
    /** Ask a human first whatever the tool's tier (an external planner's `requireApproval`). */
    requireApproval?: boolean;
  }
  /** Call the LLM through the inference-router: a step of its own. */
  | { kind: 'call_llm'; request: LlmRequest; model: string; hint?: ModelHint }
  /** Ask the external planner (no decision of it is waiting to be acted on). */
  | { kind: 'ask_planner' }
  | { kind: 'finish'; output: JsonValue }
  | { kind: 'fail'; error: RunError };

export interface Planner {
  next(state: RunState, agent: AgentSpec): PlannerAction;
}

/**
 * The `graph` planner: runs the agent's steps in order, no LLM. A failed step fails the run with
 * `tool_error`; the output is the agent's `output` template, or the last step's result.
 */
export const graphPlanner: Planner = {
  next(state, agent) {
    const last = state.history[state.history.length - 1];
    if (last && !last.ok) return { kind: 'fail', error: { code: 'tool_error', message: `step ${last.stepId ?? last.step} (${last.tool}) failed: ${last.error ?? 'unknown error'}` } };
    const steps = agent.steps ?? [];
    const done = state.history.length;
    const scope = {
      input: state.input,
      steps: Object.fromEntries(Object.entries(state.results).map(([id, result]) => [id, { result }])),
    };
    try {
      if (done >= steps.length) {
        const output = agent.output !== undefined
          ? renderTemplate(agent.output, scope)
          : last?.stepId !== undefined ? state.results[last.stepId] ?? null : null;
        return { kind: 'finish', output };
      }
      const step = steps[done];
      return { kind: 'call_tool', tool: step.tool, stepId: step.id, args: renderTemplate(step.args, scope) };
    } catch (e) {
      if (e instanceof TemplateError) return { kind: 'fail', error: { code: 'invalid_input', message: e.message } };
      throw e;
    }
  },
};

/**
 * An external planner (planner.v1, libs/sdk): its decisions arrive as recorded `planner.decided`
 * events. A recorded decision not yet acted on is carried out here, through the same paths as the
 * builtin planners' actions (step cap, loop detection, risk tiers and approvals); with none
 * waiting, the planner is asked (the orchestrator records its answer, then decides again).
 */
export const externalPlanner: Planner = {
  next(state, agent) {
    const p = state.planner;
    const d = p?.pending;
    if (!d) {
      if (p && p.sinceStep >= PLANNER_LIMITS.maxDecisionsWithoutStep) {
        return { kind: 'fail', error: { code: 'loop_detected', message: `planner "${agent.planner}" answered ${p.sinceStep} times in a row without starting a step` } };
      }
      return { kind: 'ask_planner' };
    }
    switch (d.kind) {
      case 'call_tool':
        return { kind: 'call_tool', tool: d.tool, args: d.args, ...(d.id !== undefined ? { stepId: d.id } : {}), ...(d.requireApproval ? { requireApproval: true } : {}) };
      case 'call_llm': {
        const model = d.model ?? agent.model ?? 'auto';
        const request: LlmRequest = {
          messages: d.messages, tools: d.tools ?? [],
          ...(model !== 'auto' ? { model } : {}), ...(d.hint ? { hint: d.hint } : {}),
          ...(d.maxTokens !== undefined ? { maxTokens: d.maxTokens } : {}), ...(d.temperature !== undefined ? { temperature: d.temperature } : {}),
        };
        return { kind: 'call_llm', request, model, ...(d.hint ? { hint: d.hint } : {}) };
      }
      case 'finish':
        return { kind: 'finish', output: d.output };
      case 'fail':
        return { kind: 'fail', error: { code: d.code ?? 'planner_error', message: d.message } };
      case 'emit':
        return { kind: 'ask_planner' }; // not pending once recorded (see reduce); asked again
    }
  },
};

const BUILTIN_PLANNERS: Record<string, Planner> = { graph: graphPlanner, react: reactPlanner };

/** The planner an agent names: a builtin (`graph`, `react`) or, for any other name, an external planner. */
export function plannerFor(name: string): Planner | undefined {
  return BUILTIN_PLANNERS[name] ?? (name ? externalPlanner : undefined);
}

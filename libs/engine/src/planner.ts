import type { AgentSpec, JsonValue, RunError } from '#libs/contracts';
import type { RunState } from './state.js';
import { renderTemplate, TemplateError } from './template.js';

/** What a planner wants next. Planners are pure functions of the run state. */
export type PlannerAction =
  | { kind: 'call_tool'; tool: string; args: JsonValue; stepId?: string }
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

const BUILTIN_PLANNERS: Record<string, Planner> = { graph: graphPlanner };

export function plannerFor(name: string): Planner | undefined {
  return BUILTIN_PLANNERS[name];
}

import { decisionKeyOf, PLANNER_PROTOCOL, type AgentSpec, type JsonValue, type PlannerRequest } from '#libs/contracts';
import type { RunState } from './state.js';

/** The session memory a planner sees: what the run started with, with the run's own writes applied. */
export function sessionMemoryOf(s: RunState): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = { ...(s.session?.memory ?? {}) };
  for (const [k, v] of Object.entries(s.planner?.memory ?? {})) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

/**
 * The planner.v1 request for the run's next decision: a pure view of the state. Tools carry the
 * pinned name, version and tier; the orchestrator adds their descriptions and input schemas.
 */
export function plannerRequestOf(s: RunState, agent: AgentSpec, maxSteps: number): PlannerRequest {
  return {
    protocol: PLANNER_PROTOCOL,
    planner: agent.planner,
    decisionKey: decisionKeyOf(s.runId, (s.planner?.decisions ?? 0) + 1),
    tenantId: s.tenantId,
    runId: s.runId,
    ...(s.sessionId ? { sessionId: s.sessionId } : {}),
    agent: {
      name: agent.name, version: agent.version,
      ...(agent.model !== undefined ? { model: agent.model } : {}),
      ...(agent.instructions !== undefined ? { instructions: agent.instructions } : {}),
      limits: agent.limits,
    },
    tools: Object.values(s.tools).map((t) => ({ name: t.name, version: t.version, riskTier: t.riskTier })),
    input: s.input,
    session: { turns: s.session?.turns ?? [], memory: sessionMemoryOf(s) },
    steps: s.transcript ?? [],
    emitted: s.planner?.emitted ?? [],
    step: s.step,
    maxSteps,
  };
}

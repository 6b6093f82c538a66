import type { AgentSpec, JsonValue, PinnedTool } from './domain.js';
import type { WireError } from './errors.js';

/** Durable commands on the AGENTMESH_CMD work-queue stream, by name. */
export interface CommandMap {
  /** gateway → orchestrator: admit and start a run. */
  'run.start': {
    tenantId: string;
    runId: string;
    agent: AgentSpec;
    input: JsonValue;
    sessionId?: string;
    metadata?: Record<string, string>;
  };
  /** gateway → orchestrator: cancel a run after its step in flight. */
  'run.cancel': { tenantId: string; runId: string; reason?: string };
  /** orchestrator → tool-runner: execute one tool call. */
  'tool.execute': {
    tenantId: string;
    runId: string;
    step: number;
    callKey: string;
    tool: PinnedTool;
    args: JsonValue;
  };
  /** tool-runner → orchestrator: the outcome of one tool call. */
  'tool.result': {
    tenantId: string;
    runId: string;
    step: number;
    callKey: string;
    durationMs: number;
  } & ({ ok: true; result: JsonValue; resultRef?: string } | { ok: false; error: WireError & { details?: JsonValue } });
}

export type CommandName = keyof CommandMap;

import type { AgentSpec, JsonValue, PinnedTool } from './domain.js';

/** Why a tool call failed: an open set of codes (`egress_denied`, `http_404`, `invalid_arguments`, `timeout`, ...). */
export interface ToolError {
  code: string;
  message: string;
  details?: JsonValue;
}

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
    /** The run's session, when it has one: the memory builtins keep their entries under it. */
    sessionId?: string;
  };
  /**
   * tool-runner → orchestrator: the outcome of one tool call. A result over 64 KiB is offloaded to
   * the object store: `resultRef` names it (read it with the `results.get` RPC) and `result` is a
   * small preview `{resultRef, bytes, preview}`.
   */
  'tool.result': {
    tenantId: string;
    runId: string;
    step: number;
    callKey: string;
    durationMs: number;
  } & ({ ok: true; result: JsonValue; resultRef?: string } | { ok: false; error: ToolError });
}

export type CommandName = keyof CommandMap;

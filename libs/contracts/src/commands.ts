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
    /**
     * For a tool with a credential: the delegation minted by the credential-broker for this call
     * (a short-lived, single-use compact JWT, audience `agentmesh-tool-runner`). Added at dispatch;
     * never journaled or logged. Only the tool-runner redeems it.
     */
    delegation?: string;
    /**
     * Set instead of `delegation` when the broker refused to mint one (the credential is revoked,
     * does not allow the tool...): the tool-runner fails the call with this code, closed.
     */
    credentialError?: ToolError;
    /**
     * Set when a human approved this call: the approval and the hash it was bound to
     * (approvalArgsHash of the tool name@version and these args), so the executor can check that
     * it runs exactly what was approved.
     */
    approval?: { approvalId: string; argsHash: string };
    /**
     * The delivery attempt of a call with a credential (absent: 0). A tool-runner that dies after
     * redeeming the call's single-use delegation leaves the redelivered command with a spent one;
     * the orchestrator then sends the same call (same call key, so the tool still sees one
     * Idempotency-Key) again with a fresh delegation and the next attempt number, which keeps the
     * message ids of the new command and its result apart from the spent ones.
     */
    attempt?: number;
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
    /** The `attempt` of the tool.execute this answers (absent: 0). */
    attempt?: number;
  } & ({ ok: true; result: JsonValue; resultRef?: string } | { ok: false; error: ToolError });


  /**
   * gateway → orchestrator: a human's decision on a pending approval. Folded into the journal as
   * `approval.granted` / `approval.denied` only while the approval is pending and not yet due
   * (`expiresAt`); otherwise it changes nothing (the read model shows what happened instead).
   */
  'approval.decide': {
    tenantId: string;
    runId: string;
    approvalId: string;
    decision: 'approve' | 'deny';
    /** The API key id of the approver. */
    by: string;
    reason?: string;
  };
  /**
   * orchestrator → orchestrator: the durable timer of a pending approval, on the AGENTMESH_TIMERS
   * stream. Delivered before `expiresAt` it is nak'd with the remaining delay; once due it expires
   * the approval if nobody decided it (`approval.expired`, then the run fails `approval_expired`).
   */
  'approval.timeout': { tenantId: string; runId: string; approvalId: string; expiresAt: string };
}

export type CommandName = keyof CommandMap;

/** Delegation failures that a fresh delegation may cure (the last one was spent or ran out of time). */
export const SPENT_DELEGATION_CODES: ReadonlySet<string> = new Set(['delegation_replayed', 'delegation_expired']);
/** How many times a call is sent with a delegation in all (the first and the re-sends after a spent one). */
export const MAX_DELEGATION_ATTEMPTS = 3;
/** Message ids of a call's command and result: the first attempt keeps the plain call key. */
export const toolExecuteMsgId = (callKey: string, attempt = 0): string => (attempt ? `${callKey}:a${attempt}` : callKey);
export const toolResultMsgId = (callKey: string, attempt = 0): string => (attempt ? `res:${callKey}:a${attempt}` : `res:${callKey}`);

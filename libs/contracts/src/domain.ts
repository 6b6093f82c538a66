/** Domain types shared by services and the engine. Plain data, JSON-serialisable. */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };
export type JsonObject = { [k: string]: JsonValue };

export type RiskTier = 'read' | 'write' | 'irreversible';
export const RISK_TIERS: readonly RiskTier[] = ['read', 'write', 'irreversible'];

export type RunStatus = 'queued' | 'running' | 'waiting_approval' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'cancelled'];

export type FailureCode =
  | 'budget_exceeded'
  | 'step_limit'
  | 'loop_detected'
  | 'approval_denied'
  | 'approval_expired'
  | 'tool_error'
  | 'planner_error'
  | 'invalid_input';

export interface RunError {
  code: FailureCode;
  message: string;
}

export type ToolTransport =
  | { kind: 'http'; url: string }
  | { kind: 'mcp'; url: string; tool: string }
  | { kind: 'builtin'; name: string };

/** One immutable version of a tool, as registered. */
export interface ToolDefinition {
  name: string;
  version: string;
  description: string;
  inputSchema: JsonObject;
  riskTier: RiskTier;
  transport: ToolTransport;
  egress: string[];
  timeoutMs: number;
  credential?: { name: string; scopes: string[] };
}

/** A tool version as submitted for registration; defaults fill what is left out. */
export type ToolRegistration = Omit<ToolDefinition, 'egress' | 'timeoutMs' | 'description'> &
  Partial<Pick<ToolDefinition, 'egress' | 'timeoutMs' | 'description'>>;

export interface ToolRecord extends ToolDefinition {
  tenantId: string;
  createdAt: string;
  /** sha256 of the canonical definition: equal bodies under one version are accepted again. */
  digest: string;
  /**
   * mcp tools: sha256 of the MCP server's definition of the tool (canonical `{description,
   * inputSchema}`) when this version was registered. A server that later serves another
   * definition gets the tool disabled (reason `rug_pull`) until a new version is registered.
   */
  mcpDigest?: string;
}

/** Why a tool is disabled: an operator's kill switch, or its MCP server changed the tool's definition. */
export type ToolDisabledReason = 'manual' | 'rug_pull';

/** An offloaded tool result as `results.get` returns it. */
export interface StoredResult {
  ref: string;
  /** Size of the result's JSON text in bytes. */
  bytes: number;
  /** sha256 (hex) of the JSON text. */
  sha256: string;
  createdAt: string;
  /** The whole result (requests without `offset`). */
  result?: JsonValue;
  /** A slice of the JSON text (requests with `offset`): base64 of bytes [offset, offset + length). */
  chunk?: { offset: number; length: number; base64: string; last: boolean };
}

/** A tool as pinned into a run at start: the run keeps these versions to the end. */
export interface PinnedTool {
  name: string;
  version: string;
  riskTier: RiskTier;
  /**
   * The credential the tool is called with (name and the scopes it asks for), from its definition.
   * The orchestrator asks the credential-broker for a delegation of it for each call.
   */
  credential?: { name: string; scopes: string[] };

  /**
   * Set by the orchestrator in `run.started` when the tenant's policy refuses `tools.run` for this
   * tool (e.g. a deny rule on `riskTier=write`): every call of it in the run waits for an approval,
   * like an `irreversible` one. Recorded, so replay and recovery never ask the policy again.
   */
  requireApproval?: boolean;
}

export interface GraphStep {
  id: string;
  tool: string;
  args: JsonObject;
}

export interface AgentLimits {
  maxSteps?: number;
  budgetUsd?: number;
  /**
   * How long a human has to decide an approval before it expires (no decision means deny).
   * Default DEFAULT_APPROVAL_TIMEOUT_SECONDS (3600 s), counted from the `at` of the recorded
   * `approval.requested` event.
   */
  approvalTimeoutSeconds?: number;
  /**
   * Risk tiers whose calls wait for a human approval, on top of `irreversible` (which always
   * does). `['write']` makes every write-tier call of this agent's runs ask first. The tier comes
   * from the tool version pinned at run start; the list is pinned with the agent version in
   * `run.created`, so replaying a run decides the same way.
   */
  requireApprovalFor?: RiskTier[];
}

/** Default of `limits.approvalTimeoutSeconds`. */
export const DEFAULT_APPROVAL_TIMEOUT_SECONDS = 3600;

/** State of an approval (REST `status`). */
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired';
export const APPROVAL_STATUSES: readonly ApprovalStatus[] = ['pending', 'approved', 'denied', 'expired'];

/**
 * One approval as the read model (KV bucket `am_approvals`, key `<tenant>.<approvalId>`) holds it:
 * a projection of the run's journal written by the orchestrator, rebuildable by replay.
 */
export interface ApprovalRecord {
  id: string;
  tenantId: string;
  runId: string;
  /** The step the call is for, and its idempotency key (stable from request to dispatch). */
  step: number;
  callKey: string;
  tool: string;
  version: string;
  args: JsonValue;
  /** sha256 binding the approval to the exact tool name@version and canonical args (approvalArgsHash). */
  argsHash: string;
  riskTier: RiskTier;
  status: ApprovalStatus;
  createdAt: string;
  expiresAt: string;
  /** When it was approved, denied or expired. */
  decidedAt?: string;
  /** The API key id that approved or denied. */
  decidedBy?: string;
  reason?: string;
}

/** One immutable version of an agent definition. */
export interface AgentSpec {
  name: string;
  version: string;
  planner: string;
  model?: string;
  instructions?: string;
  /** `name` (latest at run start) or `name@version`. */
  tools: string[];
  limits: AgentLimits;
  /** graph planner only */
  steps?: GraphStep[];
  /** graph planner: the output template; defaults to the last step's result. */
  output?: JsonValue;
}

export interface AgentRecord extends AgentSpec {
  tenantId: string;
  createdAt: string;
  digest: string;
}

export interface Cost {
  usd: number;
  inputTokens: number;
  outputTokens: number;
}

/** One row of the run index: a read model derived from the journal, for listing runs. */
export interface RunSummary {
  id: string;
  tenantId: string;
  agent: string;
  agentVersion: string;
  sessionId?: string;
  status: RunStatus;
  error?: RunError;
  steps: number;
  createdAt: string;
  updatedAt: string;
}

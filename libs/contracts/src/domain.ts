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
}

/** A tool as pinned into a run at start: the run keeps these versions to the end. */
export interface PinnedTool {
  name: string;
  version: string;
  riskTier: RiskTier;
}

export interface GraphStep {
  id: string;
  tool: string;
  args: JsonObject;
}

export interface AgentLimits {
  maxSteps?: number;
  budgetUsd?: number;
  approvalTimeoutSeconds?: number;
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

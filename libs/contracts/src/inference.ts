/**
 * The inference-router's contract: OpenAI-shaped chat messages and tool definitions, the
 * `inference.chat` RPC the orchestrator calls (with optional token streaming over core NATS), and
 * `inference.release`.
 */

/** A text or image part of a message's content (OpenAI chat format). */
export type ChatContentPart =
  | { type: 'text'; text: string }
  | { type: 'image_url'; image_url: { url: string; detail?: string } };

export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** One message of a conversation, OpenAI chat format. */
export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content?: string | ChatContentPart[] | null;
  name?: string;
  /** assistant only */
  tool_calls?: ChatToolCall[];
  /** tool only: the call this message answers */
  tool_call_id?: string;
}

/** A tool the model may call (OpenAI `tools[]` entry). */
export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

export type ChatToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

export type ModelHint = 'easy' | 'hard';

/** Why generation stopped (OpenAI values). */
export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

export interface InferenceUsage {
  inputTokens: number;
  outputTokens: number;
  /** Prompt tokens the replica served from its prefix (KV) cache, when it says. */
  cachedTokens: number;
  /** `upstream`: the replica reported the counts; `tokenizer`: counted by the router. */
  source: 'upstream' | 'tokenizer';
}

/**
 * `inference.chat`: one LLM step of a run. The router picks the model (`model`, else `hint` and
 * its rules), pins the session to a replica (sticky, bounded load, TTL renewed each turn), calls
 * it, and answers with the reply and its usage. With `stream: true` it also publishes each delta
 * to `inferenceDeltaSubject(tenantId, runId)` (core NATS) while the call runs.
 *
 * With `callKey` (the key the caller reserved the worst case under with `budget.reserve`), the
 * router settles the actual cost with the cost-governor (`budget.settle`, idempotent per call key);
 * without it the call is metered as a usage event on AGENTMESH_USAGE.
 */
export interface InferenceChatRequest {
  tenantId: string;
  runId: string;
  step: number;
  /** The affinity key: turns of one session go to the same replica. Usually the run id. */
  sessionId: string;
  /** An exact model; otherwise `hint` and the model routing rules choose. */
  model?: string;
  hint?: ModelHint;
  messages: ChatMessage[];
  tools?: ChatTool[];
  tool_choice?: ChatToolChoice;
  max_tokens?: number;
  temperature?: number;
  stream?: boolean;
  callKey?: string;
  /** The agent's name, for usage records. */
  agent?: string;
}

export interface InferenceChatResponse {
  /** The router's id for the call (also the upstream completion id when it has one). */
  id: string;
  model: string;
  tier: 'cheap' | 'frontier' | 'explicit';
  /** The model routing rule that chose the model (or `explicit`). */
  rule: string;
  replica: string;
  /** How the session was placed: `hit` (kept its replica), `new`, `moved` (its replica failed). */
  placement: 'hit' | 'new' | 'moved';
  message: { role: 'assistant'; content: string | null; tool_calls?: ChatToolCall[] };
  finishReason: FinishReason;
  usage: InferenceUsage;
  costUsd: number;
  /** What the cost-governor charged for `callKey` (absent without a call key or when it could not be reached). */
  settled?: { usd: number; replayed: boolean };
  /** Milliseconds: queued for admission, to first token, total. */
  timing: { queuedMs: number; firstTokenMs: number; totalMs: number };
}

/** One message on `inferenceDeltaSubject`: a piece of the reply being generated. */
export interface InferenceDelta {
  runId: string;
  step: number;
  callKey?: string;
  /** 0, 1, 2... per call, so a subscriber can spot gaps (core NATS is at-most-once). */
  seq: number;
  content?: string;
  /** Tool call pieces, OpenAI streaming format (the first piece of a call has its id and name). */
  tool_calls?: Array<{ index: number; id?: string; function: { name?: string; arguments?: string } }>;
  /** Set on the last message of the call. */
  finishReason?: FinishReason;
}

/** `inference.release`: the session ended; its replica pins are released. */
export interface InferenceReleaseRequest {
  tenantId: string;
  sessionId: string;
}

import type { ChatMessage, ChatTool, ChatToolCall, ChatToolChoice, FinishReason } from '#libs/contracts';

/** An OpenAI chat completions request body (the fields the router reads; others pass through to OpenAI-compatible replicas). */
export interface ChatCompletionRequest {
  model?: string;
  messages: ChatMessage[];
  tools?: ChatTool[];
  tool_choice?: ChatToolChoice;
  parallel_tool_calls?: boolean;
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  stop?: string | string[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  user?: string;
  [extra: string]: unknown;
}

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

export interface AssistantMessage {
  role: 'assistant';
  content: string | null;
  tool_calls?: ChatToolCall[];
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{ index: number; message: AssistantMessage; finish_reason: FinishReason | null; logprobs?: null }>;
  usage?: ChatUsage;
}

export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
}

export interface ChunkChoice {
  index: number;
  delta: { role?: 'assistant'; content?: string | null; tool_calls?: ToolCallDelta[] };
  finish_reason: FinishReason | null;
  logprobs?: null;
}

export interface ChatChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: ChunkChoice[];
  usage?: ChatUsage | null;
}

/** Builds the final completion from streamed chunks (content, tool calls by index, finish reason, usage). */
export class ChunkAccumulator {
  id = '';
  model = '';
  created = 0;
  content = '';
  sawContent = false;
  finishReason: FinishReason | null = null;
  usage: ChatUsage | undefined;
  private readonly calls = new Map<number, ChatToolCall>();

  add(chunk: ChatChunk): void {
    if (!this.id && chunk.id) this.id = chunk.id;
    if (!this.model && chunk.model) this.model = chunk.model;
    if (!this.created && chunk.created) this.created = chunk.created;
    if (chunk.usage) this.usage = chunk.usage;
    for (const c of chunk.choices ?? []) {
      if (c.index !== 0) continue;
      const d = c.delta ?? {};
      if (typeof d.content === 'string') {
        this.content += d.content;
        this.sawContent = true;
      }
      for (const t of d.tool_calls ?? []) {
        let call = this.calls.get(t.index);
        if (call === undefined) {
          call = { id: t.id ?? '', type: 'function', function: { name: t.function?.name ?? '', arguments: '' } };
          this.calls.set(t.index, call);
        } else {
          if (t.id) call.id = t.id;
          if (t.function?.name) call.function.name += t.function.name;
        }
        if (t.function?.arguments) call.function.arguments += t.function.arguments;
      }
      if (c.finish_reason) this.finishReason = c.finish_reason;
    }
  }

  completion(fallbackId: string, fallbackModel: string): ChatCompletion {
    const toolCalls = [...this.calls.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c);
    const message: AssistantMessage = { role: 'assistant', content: this.sawContent || toolCalls.length === 0 ? this.content : null };
    if (toolCalls.length > 0) message.tool_calls = toolCalls;
    return {
      id: this.id || fallbackId,
      object: 'chat.completion',
      created: this.created || Math.floor(Date.now() / 1000),
      model: this.model || fallbackModel,
      choices: [{ index: 0, message, finish_reason: this.finishReason ?? (toolCalls.length > 0 ? 'tool_calls' : 'stop'), logprobs: null }],
      ...(this.usage ? { usage: this.usage } : {}),
    };
  }
}

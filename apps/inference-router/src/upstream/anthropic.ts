/**
 * The Anthropic Messages API adapter: OpenAI chat completions requests are translated to
 * `POST /v1/messages`, and answers (whole or streamed) back to OpenAI completions and chunks,
 * tool calls included. The translation functions are pure.
 */
import type { ChatContentPart, ChatMessage, ChatToolCall, ChatToolChoice, FinishReason } from '#libs/contracts';
import type { ChatChunk, ChatCompletion, ChatCompletionRequest, ChatUsage, ToolCallDelta } from './types.js';

export const ANTHROPIC_VERSION = '2023-06-01';
/** Anthropic requires max_tokens; used when the request sets none. */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

export type AnthropicContentBlock =
  | { type: 'text'; text: string }
  | { type: 'image'; source: { type: 'base64'; media_type: string; data: string } | { type: 'url'; url: string } }
  | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> }
  | { type: 'tool_result'; tool_use_id: string; content: string; is_error?: boolean };

export interface AnthropicMessageParam {
  role: 'user' | 'assistant';
  content: AnthropicContentBlock[];
}

export interface AnthropicTool {
  name: string;
  description?: string;
  input_schema: Record<string, unknown>;
}

export type AnthropicToolChoice =
  | { type: 'auto' | 'any' | 'none'; disable_parallel_tool_use?: boolean }
  | { type: 'tool'; name: string; disable_parallel_tool_use?: boolean };

export interface AnthropicRequest {
  model: string;
  max_tokens: number;
  messages: AnthropicMessageParam[];
  system?: string;
  tools?: AnthropicTool[];
  tool_choice?: AnthropicToolChoice;
  temperature?: number;
  top_p?: number;
  stop_sequences?: string[];
  stream?: boolean;
  metadata?: { user_id: string };
}

export interface AnthropicUsage {
  input_tokens?: number;
  output_tokens?: number;
  cache_read_input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
}

/** A whole Messages API answer (the parts read). */
export interface AnthropicMessage {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: Array<{ type: string; text?: string; id?: string; name?: string; input?: unknown }>;
  stop_reason: string | null;
  usage: AnthropicUsage;
}

function textOf(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (p.type === 'text' ? p.text : '')).join('');
  return '';
}

function imageBlock(url: string): AnthropicContentBlock {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  if (m) return { type: 'image', source: { type: 'base64', media_type: m[1], data: m[2] } };
  return { type: 'image', source: { type: 'url', url } };
}

function userBlocks(content: ChatMessage['content']): AnthropicContentBlock[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) return [];
  const out: AnthropicContentBlock[] = [];
  for (const p of content as ChatContentPart[]) {
    if (p.type === 'text' && p.text !== '') out.push({ type: 'text', text: p.text });
    else if (p.type === 'image_url') out.push(imageBlock(p.image_url.url));
  }
  return out;
}

/** Tool call arguments (a JSON string) as the object Anthropic wants; anything else is wrapped. */
export function toolInput(args: string): Record<string, unknown> {
  if (args.trim() === '') return {};
  try {
    const v: unknown = JSON.parse(args);
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    return { value: v };
  } catch {
    return { arguments: args };
  }
}

function toolChoice(choice: ChatToolChoice | undefined, parallel: boolean | undefined): AnthropicToolChoice | undefined {
  const noParallel = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (choice === undefined) return parallel === false ? { type: 'auto', ...noParallel } : undefined;
  if (choice === 'auto') return { type: 'auto', ...noParallel };
  if (choice === 'none') return { type: 'none' };
  if (choice === 'required') return { type: 'any', ...noParallel };
  return { type: 'tool', name: choice.function.name, ...noParallel };
}

/** OpenAI chat completions request → Anthropic Messages request. */
export function toAnthropicRequest(req: ChatCompletionRequest, model: string, stream: boolean): AnthropicRequest {
  const system: string[] = [];
  const messages: AnthropicMessageParam[] = [];
  const push = (role: 'user' | 'assistant', blocks: AnthropicContentBlock[]) => {
    if (blocks.length === 0) return;
    const last = messages.at(-1);
    // Anthropic wants user and assistant turns to alternate: consecutive ones are merged, and a
    // tool result (a user turn) goes before any text of the same turn.
    if (last !== undefined && last.role === role) {
      const results = blocks.filter((b) => b.type === 'tool_result');
      const rest = blocks.filter((b) => b.type !== 'tool_result');
      const firstNonResult = last.content.findIndex((b) => b.type !== 'tool_result');
      if (results.length > 0 && firstNonResult >= 0) last.content.splice(firstNonResult, 0, ...results);
      else last.content.push(...results);
      last.content.push(...rest);
    } else {
      messages.push({ role, content: [...blocks] });
    }
  };
  for (const m of req.messages) {
    switch (m.role) {
      case 'system':
      case 'developer': {
        const t = textOf(m.content);
        if (t !== '') system.push(t);
        break;
      }
      case 'user':
        push('user', userBlocks(m.content));
        break;
      case 'assistant': {
        const blocks: AnthropicContentBlock[] = [];
        const t = textOf(m.content);
        if (t !== '') blocks.push({ type: 'text', text: t });
        for (const c of m.tool_calls ?? []) blocks.push({ type: 'tool_use', id: c.id, name: c.function.name, input: toolInput(c.function.arguments) });
        push('assistant', blocks);
        break;
      }
      case 'tool':
        push('user', [{ type: 'tool_result', tool_use_id: m.tool_call_id ?? '', content: textOf(m.content) }]);
        break;
    }
  }
  const out: AnthropicRequest = {
    model,
    max_tokens: req.max_completion_tokens ?? req.max_tokens ?? ANTHROPIC_DEFAULT_MAX_TOKENS,
    messages,
  };
  if (system.length > 0) out.system = system.join('\n\n');
  if (req.tools && req.tools.length > 0) {
    out.tools = req.tools.map((t) => ({
      name: t.function.name,
      ...(t.function.description ? { description: t.function.description } : {}),
      input_schema: t.function.parameters ?? { type: 'object', properties: {} },
    }));
  }
  const tc = req.tools && req.tools.length > 0 ? toolChoice(req.tool_choice, req.parallel_tool_calls) : undefined;
  if (tc !== undefined) out.tool_choice = tc;
  // OpenAI's temperature runs 0..2, Anthropic's 0..1
  if (typeof req.temperature === 'number') out.temperature = Math.min(1, Math.max(0, req.temperature));
  if (typeof req.top_p === 'number') out.top_p = req.top_p;
  if (req.stop !== undefined) out.stop_sequences = Array.isArray(req.stop) ? req.stop : [req.stop];
  if (typeof req.user === 'string' && req.user !== '') out.metadata = { user_id: req.user };
  if (stream) out.stream = true;
  return out;
}

export function finishReason(stop: string | null | undefined): FinishReason {
  switch (stop) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      return 'stop';
  }
}

/** Anthropic usage → OpenAI usage: prompt tokens count cache reads and writes; cached tokens are the reads. */
export function usageOf(u: AnthropicUsage): ChatUsage {
  const cacheRead = u.cache_read_input_tokens ?? 0;
  const prompt = (u.input_tokens ?? 0) + cacheRead + (u.cache_creation_input_tokens ?? 0);
  const completion = u.output_tokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cacheRead } };
}

/** Anthropic Messages answer → OpenAI chat completion. */
export function fromAnthropicResponse(msg: AnthropicMessage, created = Math.floor(Date.now() / 1000)): ChatCompletion {
  let text = '';
  let sawText = false;
  const toolCalls: ChatToolCall[] = [];
  for (const b of msg.content ?? []) {
    if (b.type === 'text' && typeof b.text === 'string') {
      text += b.text;
      sawText = true;
    } else if (b.type === 'tool_use') {
      toolCalls.push({ id: b.id ?? '', type: 'function', function: { name: b.name ?? '', arguments: JSON.stringify(b.input ?? {}) } });
    }
  }
  const message: ChatCompletion['choices'][number]['message'] = { role: 'assistant', content: sawText || toolCalls.length === 0 ? text : null };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return {
    id: msg.id,
    object: 'chat.completion',
    created,
    model: msg.model,
    choices: [{ index: 0, message, finish_reason: finishReason(msg.stop_reason), logprobs: null }],
    usage: usageOf(msg.usage ?? {}),
  };
}

/** An `error` event in Anthropic's stream. */
export class AnthropicStreamError extends Error {
  override readonly name = 'AnthropicStreamError';
  readonly code = 'anthropic_stream_error';
  constructor(readonly type: string, message: string) {
    super(message);
  }
}

interface StreamBlock {
  readonly kind: 'text' | 'tool' | 'other';
  readonly toolIndex: number;
}

/**
 * Anthropic's streamed events → OpenAI `chat.completion.chunk`s: message_start gives the role
 * chunk, text deltas content chunks, a tool_use block a tool call (id and name first, then its
 * input JSON in pieces), message_delta the finish reason, message_stop a usage-only chunk.
 */
export class AnthropicStreamTranslator {
  private id = '';
  private model: string;
  private readonly created: number;
  private usage: AnthropicUsage = {};
  private readonly blocks = new Map<number, StreamBlock>();
  private nextTool = 0;

  constructor(model: string, created = Math.floor(Date.now() / 1000)) {
    this.model = model;
    this.created = created;
  }

  /** Translates one event (its `event:` name and parsed `data:`); returns the chunks it yields. */
  push(type: string, data: Record<string, unknown>): ChatChunk[] {
    switch (type) {
      case 'message_start': {
        const m = (data.message ?? {}) as { id?: string; model?: string; usage?: AnthropicUsage };
        if (m.id) this.id = m.id;
        if (m.model) this.model = m.model;
        this.usage = { ...this.usage, ...(m.usage ?? {}) };
        return [this.chunk({ role: 'assistant', content: '' })];
      }
      case 'content_block_start': {
        const index = data.index as number;
        const block = (data.content_block ?? {}) as { type?: string; text?: string; id?: string; name?: string };
        if (block.type === 'text') {
          this.blocks.set(index, { kind: 'text', toolIndex: -1 });
          return block.text ? [this.chunk({ content: block.text })] : [];
        }
        if (block.type === 'tool_use') {
          const toolIndex = this.nextTool++;
          this.blocks.set(index, { kind: 'tool', toolIndex });
          return [this.chunk({ tool_calls: [{ index: toolIndex, id: block.id ?? '', type: 'function', function: { name: block.name ?? '', arguments: '' } }] })];
        }
        this.blocks.set(index, { kind: 'other', toolIndex: -1 });
        return [];
      }
      case 'content_block_delta': {
        const b = this.blocks.get(data.index as number);
        const delta = (data.delta ?? {}) as { type?: string; text?: string; partial_json?: string };
        if (b?.kind === 'text' && delta.type === 'text_delta' && delta.text) return [this.chunk({ content: delta.text })];
        if (b?.kind === 'tool' && delta.type === 'input_json_delta' && delta.partial_json) {
          const piece: ToolCallDelta = { index: b.toolIndex, function: { arguments: delta.partial_json } };
          return [this.chunk({ tool_calls: [piece] })];
        }
        return [];
      }
      case 'message_delta': {
        const delta = (data.delta ?? {}) as { stop_reason?: string | null };
        const u = (data.usage ?? {}) as AnthropicUsage;
        this.usage = { ...this.usage, ...Object.fromEntries(Object.entries(u).filter(([, v]) => v !== null && v !== undefined)) };
        return delta.stop_reason !== undefined ? [this.chunk({}, finishReason(delta.stop_reason))] : [];
      }
      case 'message_stop':
        return [{ id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage: usageOf(this.usage) }];
      case 'error': {
        const e = (data.error ?? {}) as { type?: string; message?: string };
        throw new AnthropicStreamError(e.type ?? 'error', e.message ?? 'the stream failed');
      }
      default: // ping, content_block_stop
        return [];
    }
  }

  private chunk(delta: ChatChunk['choices'][number]['delta'], finish: FinishReason | null = null): ChatChunk {
    return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] };
  }
}

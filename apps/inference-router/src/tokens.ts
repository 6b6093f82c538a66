import { Tiktoken } from 'js-tiktoken/lite';
import type { ChatMessage, ChatTool } from '#libs/contracts';
import type { AssistantMessage } from './upstream/types.js';

/**
 * Token counts with a real BPE tokenizer (js-tiktoken), for replicas that report no usage:
 * o200k_base for OpenAI's newer models (gpt-4o, gpt-4.1, gpt-5, o-series), cl100k_base for
 * everything else (a close stand-in for Llama/Claude tokenizers; exact counts need the replica's
 * own). Encoders load lazily: building one takes 0.5–1 s once.
 *
 * Prompt tokens follow OpenAI's published accounting for chat: 3 per message, 1 per name, 3 for
 * the reply's priming; tool definitions are counted as their JSON.
 */
type EncodingName = 'o200k_base' | 'cl100k_base';

const encoders = new Map<EncodingName, Tiktoken>();

async function loadRanks(name: EncodingName): Promise<ConstructorParameters<typeof Tiktoken>[0]> {
  const mod = name === 'o200k_base'
    ? ((await import('js-tiktoken/ranks/o200k_base')) as { default: ConstructorParameters<typeof Tiktoken>[0] })
    : ((await import('js-tiktoken/ranks/cl100k_base')) as { default: ConstructorParameters<typeof Tiktoken>[0] });
  return mod.default;
}

export function encodingFor(model: string): EncodingName {
  return /^(gpt-4o|gpt-4\.1|gpt-5|o1|o3|o4|chatgpt-4o)/i.test(model) ? 'o200k_base' : 'cl100k_base';
}

async function encoder(model: string): Promise<Tiktoken> {
  const name = encodingFor(model);
  let enc = encoders.get(name);
  if (enc === undefined) {
    enc = new Tiktoken(await loadRanks(name));
    encoders.set(name, enc);
  }
  return enc;
}

function text(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (p.type === 'text' ? p.text : '')).join('');
  return '';
}

export async function countTextTokens(model: string, s: string): Promise<number> {
  if (s === '') return 0;
  return (await encoder(model)).encode(s, 'all').length;
}

/** Prompt tokens of a chat request. */
export async function countPromptTokens(model: string, messages: readonly ChatMessage[], tools?: readonly ChatTool[]): Promise<number> {
  const enc = await encoder(model);
  let n = 3;
  for (const m of messages) {
    n += 3 + enc.encode(m.role, 'all').length + enc.encode(text(m.content), 'all').length;
    if (m.name) n += 1 + enc.encode(m.name, 'all').length;
    for (const c of m.tool_calls ?? []) n += 3 + enc.encode(c.function.name, 'all').length + enc.encode(c.function.arguments, 'all').length;
    if (m.tool_call_id) n += enc.encode(m.tool_call_id, 'all').length;
  }
  if (tools && tools.length > 0) n += enc.encode(JSON.stringify(tools), 'all').length;
  return n;
}

/** Output tokens of a reply: its text and its tool calls' names and arguments. */
export async function countCompletionTokens(model: string, message: AssistantMessage): Promise<number> {
  const enc = await encoder(model);
  let n = message.content ? enc.encode(message.content, 'all').length : 0;
  for (const c of message.tool_calls ?? []) n += 3 + enc.encode(c.function.name, 'all').length + enc.encode(c.function.arguments, 'all').length;
  return Math.max(n, 1);
}

/** A cheap estimate (about 4 characters a token) for routing decisions, where a real count would cost too much. */
export function estimatePromptTokens(messages: readonly ChatMessage[], tools?: readonly unknown[]): number {
  let chars = 0;
  for (const m of messages) {
    chars += text(m.content).length + 16;
    for (const c of m.tool_calls ?? []) chars += c.function.name.length + c.function.arguments.length;
  }
  if (tools && tools.length > 0) chars += JSON.stringify(tools).length;
  return Math.ceil(chars / 4);
}

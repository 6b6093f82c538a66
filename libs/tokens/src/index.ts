import { Tiktoken } from 'js-tiktoken/lite';
import type { AssistantMessage, ChatMessage, ChatTool } from '#libs/contracts';

/**
 * Token counts with a real BPE tokenizer (js-tiktoken), shared by the orchestrator (the worst case
 * reserved before an LLM call) and the inference-router (usage of replicas that report none):
 * o200k_base for OpenAI's newer models (gpt-4o, gpt-4.1, gpt-5, o-series), cl100k_base for
 * everything else and for `auto` (a close stand-in for Llama/Claude tokenizers: a reservation is a
 * bound, and a settlement uses the replica's own counts when it has them). Encoders load lazily
 * and once (0.5–1 s each).
 *
 * Chat accounting as OpenAI publishes it: 3 tokens per message, 1 per name, 3 priming the reply;
 * tool definitions are counted as their JSON.
 */
type EncodingName = 'o200k_base' | 'cl100k_base';
type Ranks = ConstructorParameters<typeof Tiktoken>[0];

const encoders = new Map<EncodingName, Promise<Tiktoken>>();

export function encodingFor(model: string | undefined): EncodingName {
  return model && /^(gpt-4o|gpt-4\.1|gpt-5|o1|o3|o4|chatgpt-4o)/i.test(model) ? 'o200k_base' : 'cl100k_base';
}

function encoder(model: string | undefined): Promise<Tiktoken> {
  const name = encodingFor(model);
  let enc = encoders.get(name);
  if (enc === undefined) {
    // one load per encoding, however many calls ask for it at once
    enc = (async () => {
      const mod = name === 'o200k_base'
        ? ((await import('js-tiktoken/ranks/o200k_base')) as { default: Ranks })
        : ((await import('js-tiktoken/ranks/cl100k_base')) as { default: Ranks });
      return new Tiktoken(mod.default);
    })();
    encoders.set(name, enc);
    enc.catch(() => encoders.delete(name));
  }
  return enc;
}

function text(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (p.type === 'text' ? p.text : '')).join('');
  return '';
}

/** Tokens of a plain text. */
export async function countTextTokens(model: string | undefined, s: string): Promise<number> {
  if (s === '') return 0;
  return (await encoder(model)).encode(s, 'all').length;
}

/** Prompt tokens of a chat request. */
export async function countPromptTokens(model: string | undefined, messages: readonly ChatMessage[], tools?: readonly ChatTool[]): Promise<number> {
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

/** Output tokens of a reply: its text and its tool calls' names and arguments (at least 1). */
export async function countCompletionTokens(model: string | undefined, message: Pick<AssistantMessage, 'content' | 'tool_calls'>): Promise<number> {
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

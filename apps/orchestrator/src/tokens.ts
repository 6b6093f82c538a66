import { Tiktoken } from 'js-tiktoken/lite';
import type { ChatMessage, ChatTool } from '#libs/contracts';

/**
 * Prompt token counts for the worst case reserved before an LLM call (js-tiktoken): o200k_base
 * for OpenAI's newer models, cl100k_base for everything else and for `auto` (a close stand-in:
 * the reservation is a bound, the settlement uses the replica's own counts). Encoders load once,
 * lazily (0.5–1 s). Chat accounting as OpenAI publishes it: 3 tokens per message, 1 per name,
 * 3 priming the reply; tool definitions counted as their JSON.
 */
type EncodingName = 'o200k_base' | 'cl100k_base';
type Ranks = ConstructorParameters<typeof Tiktoken>[0];

const encoders = new Map<EncodingName, Promise<Tiktoken>>();

function encodingFor(model: string | undefined): EncodingName {
  return model && /^(gpt-4o|gpt-4\.1|gpt-5|o1|o3|o4|chatgpt-4o)/i.test(model) ? 'o200k_base' : 'cl100k_base';
}

function encoder(model: string | undefined): Promise<Tiktoken> {
  const name = encodingFor(model);
  let enc = encoders.get(name);
  if (enc === undefined) {
    enc = (async () => {
      const mod = name === 'o200k_base'
        ? ((await import('js-tiktoken/ranks/o200k_base')) as { default: Ranks })
        : ((await import('js-tiktoken/ranks/cl100k_base')) as { default: Ranks });
      return new Tiktoken(mod.default);
    })();
    encoders.set(name, enc);
  }
  return enc;
}

function text(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (p.type === 'text' ? p.text : '')).join('');
  return '';
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

import { xxhash32 } from '#libs/routing';

/** OpenAI chat message, as much of it as the simulator reads. */
export interface ChatMessage {
  readonly role: string;
  readonly content?: string | readonly { readonly type: string; readonly text?: string }[] | null;
  readonly name?: string;
  readonly tool_call_id?: string;
  readonly tool_calls?: readonly {
    readonly id?: string;
    readonly type?: string;
    readonly function?: { readonly name?: string; readonly arguments?: string };
  }[];
}

/** Text of a message's content (text parts joined). */
export function messageText(m: ChatMessage): string {
  if (typeof m.content === 'string') return m.content;
  if (Array.isArray(m.content)) return m.content.map((p) => (typeof p.text === 'string' ? p.text : '')).join('');
  return '';
}

/**
 * Renders the conversation the way a chat template does: tool schemas first, then each message
 * in order, then the generation prompt. A follow-up turn's rendering starts with the previous
 * turn's, which is what makes prefix caching work.
 */
export function renderPrompt(messages: readonly ChatMessage[], tools?: unknown): string {
  let out = '';
  if (Array.isArray(tools) && tools.length > 0) out += `<|tools|>\n${JSON.stringify(tools)}<|end|>\n`;
  for (const m of messages) {
    out += `<|${m.role}|>`;
    if (m.name) out += `[${m.name}]`;
    if (m.tool_call_id) out += `[${m.tool_call_id}]`;
    out += `\n${messageText(m)}`;
    if (m.tool_calls && m.tool_calls.length > 0) out += JSON.stringify(m.tool_calls.map((c) => ({ name: c.function?.name, arguments: c.function?.arguments })));
    out += '<|end|>\n';
  }
  return `${out}<|assistant|>\n`;
}

/** Approximate token count: one token per `charsPerToken` characters. */
export function countTokens(text: string, charsPerToken: number): number {
  return Math.ceil(text.length / charsPerToken);
}

/**
 * Chain keys of the prompt's full blocks: block i's key hashes its text and block i-1's key
 * (two 32-bit lanes folded into a 52-bit integer), so equal keys mean equal prefixes.
 */
export function promptBlockKeys(text: string, blockSize: number, charsPerToken: number): number[] {
  const blockChars = blockSize * charsPerToken;
  const full = Math.floor(text.length / blockChars);
  const keys: number[] = new Array<number>(full);
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < full; i++) {
    const chunk = text.slice(i * blockChars, (i + 1) * blockChars);
    hi = xxhash32(chunk, (hi ^ 0x9e3779b9) >>> 0) & 0xfffff;
    lo = xxhash32(chunk, (lo ^ 0x85ebca77) >>> 0);
    keys[i] = hi * 0x1_0000_0000 + lo;
  }
  return keys;
}

import { messageText, type ChatMessage } from './prompt.js';

/**
 * Scripted replies for tests: a rule matches the last user or tool message and answers with
 * content or OpenAI tool calls. Rules are tried in order; the first match wins.
 */
export interface ScriptMatcher {
  /** Which kind of message must be the last user/tool message. */
  readonly role?: 'user' | 'tool';
  /** Substring of its text. */
  readonly contains?: string;
  /** Regular expression source tested against its text. */
  readonly pattern?: string;
  readonly flags?: string;
}

export interface ScriptToolCall {
  readonly id?: string;
  readonly name: string;
  /** A JSON string, or an object that is serialised. */
  readonly arguments: string | Readonly<Record<string, unknown>>;
}

export interface ScriptReply {
  readonly content?: string;
  readonly tool_calls?: readonly ScriptToolCall[];
}

export interface ScriptRule {
  readonly match: ScriptMatcher | ((message: ChatMessage) => boolean);
  readonly reply: ScriptReply;
}

/** The last message from the user or a tool: what a scripted agent reacts to. */
export function lastUserOrTool(messages: readonly ChatMessage[]): ChatMessage | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m.role === 'user' || m.role === 'tool') return m;
  }
  return undefined;
}

export function matchScript(rules: readonly ScriptRule[], messages: readonly ChatMessage[]): ScriptReply | undefined {
  const last = lastUserOrTool(messages);
  if (last === undefined) return undefined;
  const text = messageText(last);
  for (const rule of rules) {
    const m = rule.match;
    if (typeof m === 'function') {
      if (m(last)) return rule.reply;
      continue;
    }
    if (m.role !== undefined && m.role !== last.role) continue;
    if (m.contains !== undefined && !text.includes(m.contains)) continue;
    if (m.pattern !== undefined && !new RegExp(m.pattern, m.flags).test(text)) continue;
    return rule.reply;
  }
  return undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a script loaded from JSON (the CLI's --script file). */
export function parseScript(input: unknown): ScriptRule[] {
  if (!Array.isArray(input)) throw new TypeError('script must be an array of rules');
  return input.map((r: unknown, i) => {
    if (!isRecord(r) || !isRecord(r.match) || !isRecord(r.reply)) throw new TypeError(`script[${i}] needs match and reply objects`);
    const { role, contains, pattern, flags } = r.match;
    if (role !== undefined && role !== 'user' && role !== 'tool') throw new TypeError(`script[${i}].match.role must be user or tool`);
    for (const [k, v] of Object.entries({ contains, pattern, flags })) {
      if (v !== undefined && typeof v !== 'string') throw new TypeError(`script[${i}].match.${k} must be a string`);
    }
    if (pattern !== undefined) new RegExp(pattern as string, flags as string | undefined);
    const { content, tool_calls } = r.reply;
    if (content !== undefined && typeof content !== 'string') throw new TypeError(`script[${i}].reply.content must be a string`);
    if (tool_calls !== undefined) {
      if (!Array.isArray(tool_calls)) throw new TypeError(`script[${i}].reply.tool_calls must be an array`);
      tool_calls.forEach((c: unknown, j) => {
        if (!isRecord(c) || typeof c.name !== 'string' || !(typeof c.arguments === 'string' || isRecord(c.arguments))) {
          throw new TypeError(`script[${i}].reply.tool_calls[${j}] needs a name and arguments`);
        }
      });
    }
    return r as unknown as ScriptRule;
  });
}

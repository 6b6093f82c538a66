import { xxhash32 } from '#libs/routing';
import type { ScriptReply } from './script.js';

/** One output token's worth of a reply, as streamed. */
export type Piece =
  | { readonly kind: 'content'; readonly text: string }
  | { readonly kind: 'tool_start'; readonly index: number; readonly id: string; readonly name: string }
  | { readonly kind: 'tool_args'; readonly index: number; readonly text: string };

export interface PlannedReply {
  readonly pieces: readonly Piece[];
  readonly content: string | null;
  readonly toolCalls: readonly { readonly id: string; readonly type: 'function'; readonly function: { readonly name: string; readonly arguments: string } }[];
  readonly finishReason: 'stop' | 'length' | 'tool_calls';
}

const WORDS = ['the', 'agent', 'reads', 'the', 'result', 'and', 'plans', 'its', 'next', 'step', 'with', 'care', 'before', 'it', 'answers', 'tools'];

function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/**
 * Splits a reply into output tokens (≈ charsPerToken characters each; a tool call's name is one
 * token). Without a script reply, generates `defaultTokens` deterministic filler words.
 */
export function planReply(opts: {
  readonly scripted: ScriptReply | undefined;
  readonly maxTokens: number | undefined;
  readonly defaultTokens: number;
  readonly charsPerToken: number;
  readonly seedText: string;
  readonly callIdPrefix: string;
}): PlannedReply {
  const { scripted, maxTokens, charsPerToken } = opts;
  if (scripted === undefined) {
    const n = Math.max(1, maxTokens ?? opts.defaultTokens);
    const seed = xxhash32(opts.seedText);
    const pieces: Piece[] = Array.from({ length: n }, (_, i) => ({ kind: 'content', text: `${i === 0 ? '' : ' '}${WORDS[(seed + i * 7) % WORDS.length]}` }));
    return { pieces, content: pieces.map((p) => (p.kind === 'content' ? p.text : '')).join(''), toolCalls: [], finishReason: maxTokens !== undefined ? 'length' : 'stop' };
  }
  const pieces: Piece[] = [];
  let content = scripted.content ?? '';
  let finishReason: PlannedReply['finishReason'] = 'stop';
  const toolCalls = (scripted.tool_calls ?? []).map((c, index) => ({
    id: c.id ?? `${opts.callIdPrefix}_${index}`,
    type: 'function' as const,
    function: { name: c.name, arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments) },
  }));
  if (toolCalls.length === 0 && maxTokens !== undefined && Math.ceil(content.length / charsPerToken) > maxTokens) {
    content = content.slice(0, Math.max(1, maxTokens) * charsPerToken);
    finishReason = 'length';
  }
  for (const text of chunks(content, charsPerToken)) pieces.push({ kind: 'content', text });
  toolCalls.forEach((c, index) => {
    pieces.push({ kind: 'tool_start', index, id: c.id, name: c.function.name });
    for (const text of chunks(c.function.arguments, charsPerToken)) pieces.push({ kind: 'tool_args', index, text });
  });
  if (toolCalls.length > 0) finishReason = 'tool_calls';
  if (pieces.length === 0) pieces.push({ kind: 'content', text: '' });
  return { pieces, content: content === '' && toolCalls.length > 0 ? null : content, toolCalls, finishReason };
}

import type { JsonValue } from '#libs/sdk';

/**
 * What the user said in one turn, read from the run's input. Text is matched against a small,
 * fixed grammar (no LLM: the example runs on a mesh with no model); structured input
 * (`{set: {key, value}}`, `{confirm: true|false}`) skips the grammar.
 */
export type Intent =
  /** `set timeout to 30`, `timeout = 30`, `{set: {key, value}}`; without a value: `set timeout`. */
  | { kind: 'set'; key: string; value?: JsonValue }
  /** `yes`, `confirm`, `apply`, `{confirm: true}`. */
  | { kind: 'confirm' }
  /** `no`, `cancel`, `discard`, `{confirm: false}`. */
  | { kind: 'reject' }
  /** Anything else, as text (a bare value answers "what value should X get?"). */
  | { kind: 'other'; text: string };

/** A configuration key: a letter, then letters, digits, `_`, `.` or `-` (at most 64). */
export const KEY = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

const CONFIRM = /^(?:y|yes|yep|confirm|confirmed|apply|apply it|ok|okay|do it|go ahead)[.!]*$/i;
const REJECT = /^(?:n|no|nope|cancel|discard|abort|stop|never ?mind)[.!]*$/i;
const SET = /^(?:please\s+)?(?:set|change|update)\s+([A-Za-z][A-Za-z0-9_.-]{0,63})(?:\s*(?:\bto\b|=|:)\s*(.+?))?\s*$/i;
const ASSIGN = /^([A-Za-z][A-Za-z0-9_.-]{0,63})\s*[=:]\s*(.+?)\s*$/;

const isRecord = (v: unknown): v is Record<string, JsonValue> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A value as typed: integers and decimals become numbers, `true`/`false` booleans, `null` null,
 * quoted text loses its quotes; anything else stays text.
 */
export function parseValue(raw: string): JsonValue {
  const t = raw.trim();
  if (/^-?\d+(?:\.\d+)?$/.test(t)) return Number(t);
  if (/^(?:true|false)$/i.test(t)) return t.toLowerCase() === 'true';
  if (t === 'null') return null;
  const quoted = /^"(.*)"$|^'(.*)'$/.exec(t);
  if (quoted) return quoted[1] ?? quoted[2] ?? '';
  return t;
}

/** The text of an input: a string, or the `text` of an object. */
function textOf(input: JsonValue): string | undefined {
  if (typeof input === 'string') return input;
  if (isRecord(input) && typeof input.text === 'string') return input.text;
  return undefined;
}

/** Reads one turn's input. */
export function parseIntent(input: JsonValue): Intent {
  if (isRecord(input)) {
    if (typeof input.confirm === 'boolean') return input.confirm ? { kind: 'confirm' } : { kind: 'reject' };
    const set = input.set;
    if (isRecord(set) && typeof set.key === 'string' && KEY.test(set.key)) {
      return 'value' in set ? { kind: 'set', key: set.key, value: set.value } : { kind: 'set', key: set.key };
    }
  }
  const text = (textOf(input) ?? JSON.stringify(input) ?? '').trim();
  if (CONFIRM.test(text)) return { kind: 'confirm' };
  if (REJECT.test(text)) return { kind: 'reject' };
  const m = SET.exec(text) ?? ASSIGN.exec(text);
  if (m) return m[2] !== undefined && m[2] !== '' ? { kind: 'set', key: m[1], value: parseValue(m[2]) } : { kind: 'set', key: m[1] };
  return { kind: 'other', text };
}

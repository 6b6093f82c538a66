import { AgentmeshError } from '#libs/contracts';

/** The message cannot be handled yet; redeliver it after `delayMs` without counting it as a failure. */
export class RetryLaterError extends Error {
  override readonly name = 'RetryLaterError';
  readonly code = 'retry_later';
  constructor(message: string, readonly delayMs: number, opts?: { cause?: unknown }) {
    super(message, opts);
  }
}

/** The message can never be handled (malformed, refers to nothing); drop it and say so. */
export class TerminalMessageError extends Error {
  override readonly name = 'TerminalMessageError';
  readonly code = 'terminal';
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
  }
}

export type MessageFate =
  | { kind: 'ack' }
  | { kind: 'nak'; delayMs: number; counts: boolean }
  | { kind: 'term'; reason: string };

const TERMINAL_CODES = new Set(['invalid_argument', 'not_found', 'permission_denied', 'conflict', 'payload_too_large']);

/**
 * The one place where an error decides a message's fate: typed terminal errors are dropped
 * (`term`), typed transient ones are redelivered after their delay (`nak`), anything unknown is
 * redelivered with exponential backoff until `maxDeliveries`, then dropped.
 */
export function fateOf(err: unknown, deliveryCount: number, maxDeliveries: number): MessageFate {
  if (err instanceof RetryLaterError) return { kind: 'nak', delayMs: err.delayMs, counts: false };
  if (err instanceof TerminalMessageError) return { kind: 'term', reason: err.message };
  if (err instanceof AgentmeshError && TERMINAL_CODES.has(err.code)) return { kind: 'term', reason: `${err.code}: ${err.message}` };
  if (deliveryCount >= maxDeliveries) return { kind: 'term', reason: `gave up after ${deliveryCount} deliveries: ${(err as Error)?.message ?? String(err)}` };
  return { kind: 'nak', delayMs: Math.min(100 * 2 ** Math.max(0, deliveryCount - 1), 10_000), counts: true };
}

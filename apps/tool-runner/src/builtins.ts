import { SESSION_ID, type JsonObject, type JsonValue } from '#libs/contracts';

/** Per-session key/value memory as the memory builtins see it (session-memory.ts implements it). */
export interface MemoryStore {
  get(tenantId: string, sessionId: string, key: string): Promise<{ value: JsonValue } | null>;
  put(tenantId: string, sessionId: string, key: string, value: JsonValue): Promise<void>;
}

/** What a builtin may use besides its arguments. */
export interface BuiltinContext {
  tenantId: string;
  /** The run's session (tool.execute `sessionId`), if it has one. */
  sessionId?: string;
  memory: MemoryStore;
}

export interface BuiltinTool {
  /**
   * A pure builtin has no side effect, so no idempotency record is kept: re-running it is harmless
   * (its result is recorded in the journal anyway).
   */
  pure: boolean;
  run(args: JsonObject, ctx: BuiltinContext): JsonValue | Promise<JsonValue>;
}

/** Raised by a builtin for bad arguments or a missing session; becomes a non-retryable tool failure with `code`. */
export class BuiltinError extends Error {
  override readonly name = 'BuiltinError';
  constructor(message: string, readonly code: string = 'builtin_error', options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Longest memory key (characters) and largest memory value (bytes of its JSON). */
export const MEMORY_MAX_KEY = 256;
export const MEMORY_MAX_VALUE_BYTES = 64 * 1024;

function memoryKey(args: JsonObject, tool: string): string {
  const key = args.key;
  if (typeof key !== 'string' || key.length === 0 || key.length > MEMORY_MAX_KEY) {
    throw new BuiltinError(`${tool}: "key" must be a string of 1 to ${MEMORY_MAX_KEY} characters`);
  }
  return key;
}

function session(ctx: BuiltinContext, tool: string): string {
  if (ctx.sessionId === undefined || ctx.sessionId === '') {
    throw new BuiltinError(`${tool} needs a session: start the run with a sessionId`, 'no_session');
  }
  if (!SESSION_ID.test(ctx.sessionId)) throw new BuiltinError(`${tool}: the run's session id is not valid`, 'no_session');
  return ctx.sessionId;
}

/**
 * The builtin tools (transport `{kind: "builtin", name}`):
 * - `noop`: returns `{}`; the platform's own cost per step, measured by the benchmark.
 * - `echo`: returns its arguments.
 * - `transform`: `{text, op}` with op `upper`, `lower`, `reverse`, `trim` or `length`; returns `{text}` or `{length}`.
 * - `memory_get` (the issue's `memory.get`; tool names cannot hold dots): `{key}`; returns
 *   `{key, found, value}` (`value` null when not found) from the run's session memory.
 * - `memory_put` (`memory.put`): `{key, value}` (any JSON up to 64 KiB); stores it in the run's session memory and
 *   returns `{key, stored: true}`. Not pure: its outcome is recorded under the call's idempotency key.
 *
 * Session memory is per tenant and session id (the run's `sessionId`), in the JetStream KV bucket
 * `am_session_memory`. A memory call in a run without a session fails with `no_session`. Entries
 * expire with the session: the bucket's max_age is the session TTL (default 24 h); nats-server 2.9
 * has no per-key TTL, so each entry expires that long after its own last write (bucket-wide max_age).
 * Suggested input schemas: memory_get `{type: object, required: [key], properties: {key: {type: string}}}`,
 * memory_put `{type: object, required: [key, value], properties: {key: {type: string}, value: {}}}`.
 */
export const BUILTINS: Record<string, BuiltinTool> = {
  noop: { pure: true, run: () => ({}) },
  echo: { pure: true, run: (args) => args },
  transform: {
    pure: true,
    run: (args): JsonValue => {
      const text = args.text;
      if (typeof text !== 'string') throw new BuiltinError('transform: "text" must be a string');
      switch (args.op) {
        case 'upper': return { text: text.toUpperCase() };
        case 'lower': return { text: text.toLowerCase() };
        case 'reverse': return { text: [...text].reverse().join('') };
        case 'trim': return { text: text.trim() };
        case 'length': return { length: [...text].length };
        default: throw new BuiltinError('transform: "op" must be one of upper, lower, reverse, trim, length');
      }
    },
  },
  memory_get: {
    pure: true,
    run: async (args, ctx): Promise<JsonValue> => {
      const sid = session(ctx, 'memory_get');
      const key = memoryKey(args, 'memory_get');
      const hit = await ctx.memory.get(ctx.tenantId, sid, key);
      return { key, found: hit !== null, value: hit?.value ?? null };
    },
  },
  memory_put: {
    pure: false,
    run: async (args, ctx): Promise<JsonValue> => {
      const sid = session(ctx, 'memory_put');
      const key = memoryKey(args, 'memory_put');
      if (!('value' in args)) throw new BuiltinError('memory_put: "value" is required');
      const bytes = Buffer.byteLength(JSON.stringify(args.value));
      if (bytes > MEMORY_MAX_VALUE_BYTES) throw new BuiltinError(`memory_put: the value is ${bytes} bytes, more than ${MEMORY_MAX_VALUE_BYTES}`, 'value_too_large');
      await ctx.memory.put(ctx.tenantId, sid, key, args.value);
      return { key, stored: true };
    },
  },
};

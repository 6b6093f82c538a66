import type { JsonObject, JsonValue } from '#libs/contracts';

export interface BuiltinTool {
  /** A pure builtin has no side effect: re-running it gives the same result, so no record is kept. */
  pure: boolean;
  run(args: JsonObject): JsonValue;
}

/** Raised by a builtin for bad arguments; becomes a non-retryable tool failure. */
export class BuiltinError extends Error {
  override readonly name = 'BuiltinError';
  readonly code = 'builtin_error';
}

/**
 * The builtin tools (transport `{kind: "builtin", name}`):
 * - `noop`: returns `{}`; the platform's own cost per step, measured by the benchmark.
 * - `echo`: returns its arguments.
 * - `transform`: `{text, op}` with op `upper`, `lower`, `reverse`, `trim` or `length`; returns `{text}` or `{length}`.
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
};

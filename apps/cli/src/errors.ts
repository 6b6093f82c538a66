/** Exit codes: documented in `agentmesh --help`. */
export const EXIT = {
  ok: 0,
  /** The run failed or was cancelled; replay found a divergence. */
  runFailed: 1,
  /** A client error: bad arguments, or a 4xx problem from the API. */
  client: 2,
  /** The server failed or could not be reached (5xx, network). */
  server: 3,
  /** A bug in the CLI itself (EX_SOFTWARE). */
  internal: 70,
} as const;

/** An error the CLI reports as `error: <detail> (<code>)` and turns into an exit code. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly code: string,
    readonly exitCode: number,
    readonly extra: { hints?: string[]; cause?: unknown } = {},
  ) {
    super(message, { cause: extra.cause });
  }
}

/** Bad command line: unknown option, missing argument, unreadable file. Exit 2. */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string, readonly helpFor?: string, opts: { cause?: unknown } = {}) {
    super(message, 'usage', EXIT.client, { hints: helpFor ? [`see 'agentmesh ${helpFor} --help'`] : [], cause: opts.cause });
  }
}

/** One field problem of a 400 problem document. */
export interface FieldProblem {
  field: string;
  message: string;
}

/** An RFC 9457 problem document returned by the API (or made up for a non-problem response). */
export interface ProblemDocument {
  type?: string;
  title?: string;
  status: number;
  detail: string;
  code: string;
  errors?: FieldProblem[];
  reason?: string;
}

/** A problem from the API: exit 2 for 4xx, 3 for 5xx. */
export class ApiProblem extends CliError {
  override name = 'ApiProblem';
  constructor(readonly problem: ProblemDocument, readonly retryAfter?: string) {
    const hints = [
      ...(problem.errors ?? []).map((f) => `${f.field}: ${f.message}`),
      ...(retryAfter ? [`retry after ${retryAfter} s`] : []),
    ];
    super(problem.detail, problem.code, problem.status >= 500 ? EXIT.server : EXIT.client, { hints });
  }
  get status(): number {
    return this.problem.status;
  }
}

/** The server could not be reached or the stream broke beyond retrying. Exit 3. */
export class UnavailableError extends CliError {
  override name = 'UnavailableError';
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, 'unavailable', EXIT.server, opts);
  }
}

/** The stderr lines and exit code for an error; anything that is not a CliError is a CLI bug. */
export function describeError(e: unknown): { lines: string[]; exitCode: number } {
  if (e instanceof CliError) {
    return { lines: [`error: ${e.message} (${e.code})`, ...(e.extra.hints ?? []).map((h) => `  ${h}`)], exitCode: e.exitCode };
  }
  const msg = e instanceof Error ? e.message : String(e);
  return { lines: [`error: ${msg} (internal)`], exitCode: EXIT.internal };
}

/**
 * Typed platform errors. One code per class of failure; REST maps them to RFC 9457 problems,
 * gRPC to status codes, the messaging layer to message fate. Messages never carry secrets.
 */
export type ErrorCode =
  | 'invalid_argument'
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'rate_limited'
  | 'resource_exhausted'
  | 'unavailable'
  | 'internal';

export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  resource_exhausted: 429,
  unavailable: 503,
  internal: 500,
};

export interface FieldProblem {
  field: string;
  message: string;
}

export class AgentmeshError extends Error {
  override name = 'AgentmeshError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: { fields?: FieldProblem[]; retryAfterSeconds?: number; reason?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: extra.cause });
  }
  get status(): number {
    return HTTP_STATUS[this.code];
  }
  toWire(): WireError {
    return {
      code: this.code,
      message: this.message,
      ...(this.extra.fields ? { fields: this.extra.fields } : {}),
      ...(this.extra.retryAfterSeconds !== undefined ? { retryAfterSeconds: this.extra.retryAfterSeconds } : {}),
      ...(this.extra.reason ? { reason: this.extra.reason } : {}),
    };
  }
  static fromWire(w: WireError): AgentmeshError {
    return new AgentmeshError(w.code, w.message, { fields: w.fields, retryAfterSeconds: w.retryAfterSeconds, reason: w.reason });
  }
}

export interface WireError {
  code: ErrorCode;
  message: string;
  fields?: FieldProblem[];
  retryAfterSeconds?: number;
  reason?: string;
}

export const invalid = (message: string, fields?: FieldProblem[]) => new AgentmeshError('invalid_argument', message, { fields });
export const notFound = (what: string) => new AgentmeshError('not_found', `${what} not found`);
export const conflict = (message: string, reason?: string) => new AgentmeshError('conflict', message, { reason });
export const unavailable = (message: string, cause?: unknown) => new AgentmeshError('unavailable', message, { cause });

export const isAgentmeshError = (e: unknown): e is AgentmeshError => e instanceof AgentmeshError;

export type RoutingErrorCode =
  | 'INVALID_OPTIONS'
  | 'INVALID_REPLICA'
  | 'UNKNOWN_REPLICA'
  | 'INVALID_STATE'
  | 'INVALID_MODEL_RULES';

/** A caller handed the routing library something it cannot use (bad options, ids or state). */
export class RoutingError extends Error {
  override readonly name = 'RoutingError';
  readonly code: RoutingErrorCode;

  constructor(code: RoutingErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function isRoutingError(err: unknown): err is RoutingError {
  return err instanceof RoutingError;
}

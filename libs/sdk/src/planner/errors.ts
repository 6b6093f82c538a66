/**
 * Typed errors of the planner SDK. Throwing from `decide`:
 * - PlannerFailure (or any other error): the run fails `planner_error` with the message;
 * - PlannerRetryLater: the run waits and the platform asks again after `retryAfterMs`.
 * The others are raised by the SDK itself.
 */
export type PlannerErrorCode = 'planner_failed' | 'retry_later' | 'incompatible_protocol' | 'bad_request' | 'connection_failed' | 'invalid_decision';

export class PlannerError extends Error {
  override name = 'PlannerError';
  constructor(readonly code: PlannerErrorCode, message: string, opts?: { cause?: unknown }) {
    super(message, opts);
  }
}

/** The planner cannot decide: the run fails `planner_error` with this message. */
export class PlannerFailure extends PlannerError {
  override name = 'PlannerFailure';
  constructor(message: string, opts?: { cause?: unknown }) {
    super('planner_failed', message, opts);
  }
}

/** The planner cannot decide now (a dependency of its own is down): the run waits and it is asked again. */
export class PlannerRetryLater extends PlannerError {
  override name = 'PlannerRetryLater';
  constructor(message: string, readonly retryAfterMs = 1000, opts?: { cause?: unknown }) {
    super('retry_later', message, opts);
  }
}

/** A request in a protocol this SDK does not speak (answered with `incompatible_protocol`). */
export class PlannerProtocolError extends PlannerError {
  override name = 'PlannerProtocolError';
  constructor(readonly received: unknown, message: string) {
    super('incompatible_protocol', message);
  }
}

/** `decide` returned something that is not a decision (a bug in the planner: the run fails). */
export class InvalidDecisionError extends PlannerError {
  override name = 'InvalidDecisionError';
  constructor(message: string) {
    super('invalid_decision', message);
  }
}

/** The SDK could not connect to NATS. */
export class PlannerConnectionError extends PlannerError {
  override name = 'PlannerConnectionError';
  constructor(message: string, opts?: { cause?: unknown }) {
    super('connection_failed', message, opts);
  }
}

export const isPlannerError = (e: unknown): e is PlannerError => e instanceof PlannerError;
export const isRetryLater = (e: unknown): e is PlannerRetryLater => e instanceof PlannerRetryLater;

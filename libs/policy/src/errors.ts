import { AgentmeshError, type FieldProblem } from '#libs/contracts';

/** A tenant rule (or the tenant id it is stored under) is invalid. Maps to 400. */
export class PolicyRuleError extends AgentmeshError {
  override name = 'PolicyRuleError';
  constructor(message: string, opts: { fields?: FieldProblem[]; cause?: unknown } = {}) {
    super('invalid_argument', message, { fields: opts.fields, cause: opts.cause, reason: 'invalid_policy_rule' });
  }
}

/**
 * A policy write lost a compare-and-set race with another writer more times than the service
 * retries. Maps to 409; the caller may retry.
 */
export class PolicyConflictError extends AgentmeshError {
  override name = 'PolicyConflictError';
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super('conflict', message, { cause: opts.cause, reason: 'policy_conflict' });
  }
}

import { isTenantId } from '#libs/contracts';
import { ConditionSyntaxError, normalizeCondition } from './condition.js';
import { ANY, type PolicyRow } from './model.js';
import { PolicyRuleError } from './errors.js';
import { getOperation, RESOURCES } from './operations.js';

/**
 * A tenant's own policy rule, stored as plain JSON (readable with the NATS CLI once the store
 * keeps it in JetStream KV). The domain is implicit: a rule always belongs to the tenant it is
 * stored under.
 */
export type TenantRule = PermissionRule | RoleAssignment;

/** Allows or denies operations to a subject, optionally under an attribute condition. */
export interface PermissionRule {
  readonly kind: 'permission';
  /** A role (`developer`, or a tenant-defined role), a principal id (`key:01J...`) or `*`. */
  readonly subject: string;
  /** An operation id (`tools.put`), `<resource>.*` (`tools.*`) or `*`. */
  readonly operation: string;
  /** Restricts the rule to `read` or `write` operations; `*` (default) for both. */
  readonly access?: 'read' | 'write' | '*';
  /** An attribute condition (condition.ts), e.g. `riskTier=write|irreversible`; `*` (default) for none. */
  readonly when?: string;
  readonly effect: 'allow' | 'deny';
}

/** Gives a subject a role inside the tenant (roles may also inherit from other roles). */
export interface RoleAssignment {
  readonly kind: 'role';
  readonly subject: string;
  readonly role: string;
}

const SUBJECT = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;

/** Whether a string can name a subject or role (`*` excluded). */
export const isSubjectName = (s: unknown): s is string => typeof s === 'string' && SUBJECT.test(s);

function fail(message: string, field: string, cause?: unknown): never {
  throw new PolicyRuleError(message, { fields: [{ field, message }], cause });
}

function checkOperationPattern(op: unknown): string {
  if (op === ANY) return ANY;
  if (typeof op !== 'string') fail('operation must be a string', 'operation');
  if (op.endsWith('.*')) {
    const resource = op.slice(0, -2);
    if (!RESOURCES.includes(resource)) fail(`unknown resource "${resource}"`, 'operation');
    if (resource === 'tenants') fail('tenant rules cannot name platform operations', 'operation');
    return op;
  }
  const spec = getOperation(op);
  if (!spec) fail(`unknown operation "${op}"`, 'operation');
  if (spec.scope !== 'tenant') fail(`"${op}" is a platform operation; tenant rules cannot name it`, 'operation');
  return op;
}

/** Validates a rule for `tenant` and returns it in canonical form; throws PolicyRuleError. */
export function normalizeRule(tenant: string, rule: TenantRule): TenantRule {
  if (!isTenantId(tenant)) fail(`"${String(tenant)}" is not a tenant id`, 'tenant');
  if (rule === null || typeof rule !== 'object') fail('a rule is an object', 'rule');
  if (rule.kind === 'permission') {
    if (rule.subject !== ANY && !isSubjectName(rule.subject)) fail('subject must be a role, a principal id or "*"', 'subject');
    const operation = checkOperationPattern(rule.operation);
    const access = rule.access ?? ANY;
    if (access !== 'read' && access !== 'write' && access !== ANY) fail('access must be "read", "write" or "*"', 'access');
    let when: string;
    try {
      when = normalizeCondition(rule.when);
    } catch (err) {
      if (err instanceof ConditionSyntaxError) fail(err.message, 'when', err);
      throw err;
    }
    if (rule.effect !== 'allow' && rule.effect !== 'deny') fail('effect must be "allow" or "deny"', 'effect');
    return { kind: 'permission', subject: rule.subject, operation, access, when, effect: rule.effect };
  }
  if (rule.kind === 'role') {
    if (!isSubjectName(rule.subject)) fail('subject must be a role or a principal id', 'subject');
    if (!isSubjectName(rule.role)) fail('role must be a role name', 'role');
    if (rule.subject === rule.role) fail('a role cannot be assigned to itself', 'role');
    return { kind: 'role', subject: rule.subject, role: rule.role };
  }
  return fail('kind must be "permission" or "role"', 'kind');
}

/** A stable identity for a rule, for de-duplication and removal. */
export function ruleKey(rule: TenantRule): string {
  return rule.kind === 'permission'
    ? JSON.stringify(['p', rule.subject, rule.operation, rule.access ?? ANY, rule.when ?? ANY, rule.effect])
    : JSON.stringify(['g', rule.subject, rule.role]);
}

/** The Casbin row of a (normalized) rule: `p` rows `[sub, dom, obj, act, cond, eft]`, `g` rows `[sub, role, dom]`. */
export function ruleToRow(tenant: string, rule: TenantRule): { ptype: 'p' | 'g'; row: PolicyRow } {
  return rule.kind === 'permission'
    ? { ptype: 'p', row: [rule.subject, tenant, rule.operation, rule.access ?? ANY, rule.when ?? ANY, rule.effect] }
    : { ptype: 'g', row: [rule.subject, rule.role, tenant] };
}

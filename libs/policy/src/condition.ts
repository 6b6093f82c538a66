/**
 * Attribute conditions of policy rules: a tiny, closed language instead of Casbin's eval(), so a
 * tenant-supplied rule can never run arbitrary expressions, needs no commas (rules are CSV-safe)
 * and is checked when it is stored.
 *
 *   condition := '*' | clause ('&' clause)*
 *   clause    := name '=' value ('|' value)*      attribute is one of the values
 *              | name '!=' value ('|' value)*     attribute is present and none of the values
 *              | name ('<' | '<=' | '>' | '>=') number
 *
 * Examples: `riskTier=write|irreversible`, `budgetState=exhausted`,
 * `riskTier=irreversible&budgetState!=ok`.
 *
 * A clause about an attribute the request does not carry never holds: an allow rule with such a
 * clause grants nothing. Operations list the attributes they require (operations.ts) and `can()`
 * refuses requests without them, so deny rules on those attributes cannot be bypassed by leaving
 * the attribute out.
 */

export type AttributeValue = string | number | boolean;
export type Attributes = Readonly<Record<string, AttributeValue>>;

type Op = '=' | '!=' | '<' | '<=' | '>' | '>=';
interface Clause {
  readonly name: string;
  readonly op: Op;
  readonly values: readonly string[];
}
export type CompiledCondition = (attrs: Attributes) => boolean;

export const ALWAYS = '*';
const NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const VALUE = /^[A-Za-z0-9_.:-]{1,128}$/;
const NUMBER = /^-?[0-9]+(\.[0-9]+)?$/;
const CLAUSE = /^([^=!<>]+)(!=|<=|>=|=|<|>)(.+)$/;

export class ConditionSyntaxError extends Error {
  override name = 'ConditionSyntaxError';
  readonly code = 'invalid_condition';
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, opts);
  }
}

function parseClause(raw: string): Clause {
  const m = CLAUSE.exec(raw.trim());
  if (!m) throw new ConditionSyntaxError(`"${raw.trim()}" is not "name=value", "name!=value" or a numeric comparison`);
  const name = m[1].trim();
  const op = m[2] as Op;
  const values = m[3].split('|').map((v) => v.trim());
  if (!NAME.test(name)) throw new ConditionSyntaxError(`"${name}" is not an attribute name`);
  for (const v of values) if (!VALUE.test(v)) throw new ConditionSyntaxError(`"${v}" is not a valid value`);
  if (op !== '=' && op !== '!=') {
    if (values.length !== 1 || !NUMBER.test(values[0])) {
      throw new ConditionSyntaxError(`"${name}${op}" compares with a single number`);
    }
  }
  return { name, op, values };
}

function parse(condition: string): Clause[] {
  const text = condition.trim();
  if (text === ALWAYS) return [];
  if (text === '') throw new ConditionSyntaxError('empty condition (use "*" for always)');
  return text.split('&').map(parseClause);
}

function holds(c: Clause, attrs: Attributes): boolean {
  if (!Object.prototype.hasOwnProperty.call(attrs, c.name)) return false;
  const actual = attrs[c.name];
  if (actual === undefined || actual === null) return false;
  switch (c.op) {
    case '=':
      return c.values.includes(String(actual));
    case '!=':
      return !c.values.includes(String(actual));
    default: {
      if (typeof actual === 'boolean') return false;
      const a = typeof actual === 'number' ? actual : NUMBER.test(actual) ? Number(actual) : NaN;
      const b = Number(c.values[0]);
      if (!Number.isFinite(a)) return false;
      if (c.op === '<') return a < b;
      if (c.op === '<=') return a <= b;
      if (c.op === '>') return a > b;
      return a >= b;
    }
  }
}

/** Returns the condition in canonical form (no spaces); throws ConditionSyntaxError if invalid. */
export function normalizeCondition(condition: string | undefined): string {
  if (condition === undefined) return ALWAYS;
  const clauses = parse(condition);
  if (clauses.length === 0) return ALWAYS;
  return clauses.map((c) => `${c.name}${c.op}${c.values.join('|')}`).join('&');
}

const cache = new Map<string, CompiledCondition | ConditionSyntaxError>();

/** Compiles a condition (memoised); throws ConditionSyntaxError if invalid. */
export function compileCondition(condition: string): CompiledCondition {
  let hit = cache.get(condition);
  if (!hit) {
    try {
      const clauses = parse(condition);
      hit = (attrs: Attributes) => clauses.every((c) => holds(c, attrs));
    } catch (err) {
      if (!(err instanceof ConditionSyntaxError)) throw err;
      hit = err;
    }
    if (cache.size > 10_000) cache.clear();
    cache.set(condition, hit);
  }
  if (hit instanceof ConditionSyntaxError) throw hit;
  return hit;
}

/** Evaluates a condition against attributes; throws ConditionSyntaxError if it is invalid. */
export function evaluateCondition(condition: string, attrs: Attributes): boolean {
  return compileCondition(condition)(attrs);
}

import { describe, expect, it } from '@jest/globals';
import { ConditionSyntaxError, evaluateCondition, normalizeCondition } from './condition.js';
import { condMatch, domMatch, PLATFORM_DOMAIN } from './model.js';

describe('attribute conditions', () => {
  it.each([
    ['*', {}, true],
    ['riskTier=write', { riskTier: 'write' }, true],
    ['riskTier=write', { riskTier: 'read' }, false],
    ['riskTier=write|irreversible', { riskTier: 'irreversible' }, true],
    ['riskTier!=read', { riskTier: 'write' }, true],
    ['riskTier!=read', { riskTier: 'read' }, false],
    ['riskTier=write&budgetState=exhausted', { riskTier: 'write', budgetState: 'exhausted' }, true],
    ['riskTier=write&budgetState=exhausted', { riskTier: 'write', budgetState: 'ok' }, false],
    ['budgetRemainingUsd<1.5', { budgetRemainingUsd: 1 }, true],
    ['budgetRemainingUsd<1.5', { budgetRemainingUsd: '2' }, false],
    ['steps>=10', { steps: 10 }, true],
    ['steps>=10', { steps: true }, false],
    ['flag=true', { flag: true }, true],
  ] as const)('evaluates %s against %j as %s', (cond, attrs, expected) => {
    expect(evaluateCondition(cond, attrs)).toBe(expected);
  });

  it('never holds a clause about an attribute the request does not carry', () => {
    expect(evaluateCondition('riskTier=write', {})).toBe(false);
    expect(evaluateCondition('riskTier!=write', {})).toBe(false);
    expect(evaluateCondition('steps<3', {})).toBe(false);
  });

  it('normalizes spacing so equal conditions compare equal', () => {
    expect(normalizeCondition(' riskTier = write | irreversible & budgetState != ok ')).toBe('riskTier=write|irreversible&budgetState!=ok');
    expect(normalizeCondition(undefined)).toBe('*');
    expect(normalizeCondition(' * ')).toBe('*');
  });

  it.each(['', 'riskTier', 'riskTier==write', 'a=b,c', 'risk tier=write', 'steps<ten', 'steps<1|2', 'x=', '1x=a', 'x=a&'])(
    'rejects the malformed condition %j',
    (cond) => {
      expect(() => normalizeCondition(cond)).toThrow(ConditionSyntaxError);
    },
  );

  it('fails closed on an unparsable stored condition: a deny fires and an allow grants nothing', () => {
    expect(condMatch({}, 'not a condition', 'deny')).toBe(true);
    expect(condMatch({}, 'not a condition', 'allow')).toBe(false);
  });

  it('never lets the any-tenant domain reach the platform domain', () => {
    expect(domMatch('acme', '*')).toBe(true);
    expect(domMatch(PLATFORM_DOMAIN, '*')).toBe(false);
    expect(domMatch('acme', 'globex')).toBe(false);
    expect(domMatch(PLATFORM_DOMAIN, PLATFORM_DOMAIN)).toBe(true);
  });
});

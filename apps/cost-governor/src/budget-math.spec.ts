import { describe, expect, it } from '@jest/globals';
import {
  advance, configure, emptyBudget, periodEndOf, periodStartOf, reserve, settle, statusOf, toMicros, viewOf, type BudgetDoc,
} from './budget-math.js';

const NOW = Date.UTC(2026, 4, 17, 12, 30);
const HOUR = 3600_000;
const budget = (limitUsd: number | null, agents?: Record<string, { limitUsd: number | null }>): BudgetDoc => {
  const d = emptyBudget('acme', NOW);
  configure(d, { limitUsd, period: 'month', agents }, NOW);
  return d;
};
const ask = (d: BudgetDoc, callKey: string, usd: number, extra: { agent?: string; run?: { spent: number; limit?: number } } = {}) =>
  reserve(d, { callKey, micros: toMicros(usd), agent: extra.agent ?? 'bot', run: extra.run }, NOW).outcome;

describe('budget math', () => {
  it('grants reservations while spent + reserved + the call fits the limit, and refuses the one that does not', () => {
    const d = budget(1);
    expect(ask(d, 'k1', 0.4)).toMatchObject({ granted: true, micros: 400_000 });
    expect(ask(d, 'k2', 0.4)).toMatchObject({ granted: true });
    const no = ask(d, 'k3', 0.4);
    expect(no).toMatchObject({ granted: false, scope: 'tenant' });
    expect(no.granted ? '' : no.reason).toContain('$1.00');
    expect(ask(d, 'k4', 0.2)).toMatchObject({ granted: true });
    expect(d.reserved).toBe(1_000_000);
    expect(viewOf(d)).toMatchObject({ limitUsd: 1, reservedUsd: 1, spentUsd: 0, remainingUsd: 0 });
  });

  it('never drifts on amounts that are not exact in binary (micro-dollar integers)', () => {
    const d = budget(0.3);
    for (let i = 0; i < 3; i++) expect(ask(d, `k${i}`, 0.1).granted).toBe(true);
    expect(ask(d, 'k3', 0.000001).granted).toBe(false);
    for (let i = 0; i < 3; i++) settle(d, `k${i}`, toMicros(0.1));
    expect(viewOf(d).spentUsd).toBe(0.3);
  });

  it('reserves idempotently on the call key and charges a settlement once', () => {
    const d = budget(10);
    expect(ask(d, 'k', 1)).toMatchObject({ granted: true, replayed: false });
    expect(ask(d, 'k', 1)).toMatchObject({ granted: true, replayed: true });
    expect(d.reserved).toBe(toMicros(1));
    expect(settle(d, 'k', toMicros(0.6))).toMatchObject({ applied: true });
    expect(settle(d, 'k', toMicros(0.6))).toMatchObject({ applied: false });
    expect(viewOf(d)).toMatchObject({ spentUsd: 0.6, reservedUsd: 0, remainingUsd: 9.4 });
  });

  it('applies the run cap and the agent cap before the tenant limit', () => {
    const d = budget(100, { bot: { limitUsd: 1 } });
    expect(ask(d, 'r', 0.5, { run: { spent: toMicros(0.6), limit: toMicros(1) } })).toMatchObject({ granted: false, scope: 'run' });
    expect(ask(d, 'a1', 0.75)).toMatchObject({ granted: true });
    expect(ask(d, 'a2', 0.5)).toMatchObject({ granted: false, scope: 'agent' });
    expect(ask(d, 'other', 0.5, { agent: 'helper' })).toMatchObject({ granted: true });
    settle(d, 'a1', toMicros(0.25));
    expect(viewOf(d).agents.bot).toEqual({ limitUsd: 1, spentUsd: 0.25, reservedUsd: 0, remainingUsd: 0.75 });
  });

  it('treats no limit as unlimited and a limit of 0 as a stop (exhausted)', () => {
    const open = budget(null);
    expect(ask(open, 'k', 1000).granted).toBe(true);
    expect(statusOf(open)).toBe('ok');
    const zero = budget(0);
    expect(statusOf(zero)).toBe('exhausted');
    expect(ask(zero, 'k', 0.01).granted).toBe(false);
  });

  it('is exhausted once spent reaches the limit, low under 10% left, and holds alone do not trip it', () => {
    const d = budget(1);
    ask(d, 'k', 0.95);
    expect(statusOf(d)).toBe('low');
    settle(d, 'k', toMicros(0.95));
    expect(statusOf(d)).toBe('low');
    ask(d, 'k2', 0.05);
    settle(d, 'k2', toMicros(0.05));
    expect(statusOf(d)).toBe('exhausted');
  });

  it('starts a new period with nothing spent and keeps the holds of calls in flight', () => {
    const d = budget(1);
    ask(d, 'a', 0.5); settle(d, 'a', toMicros(0.5));
    ask(d, 'b', 0.25);
    const nextMonth = Date.UTC(2026, 5, 1, 0, 0, 1);
    expect(advance(d, nextMonth, 60 * 24 * HOUR)).toBe(true);
    expect(viewOf(d)).toMatchObject({ spentUsd: 0, reservedUsd: 0.25, periodStart: '2026-06-01T00:00:00.000Z', periodEnd: '2026-07-01T00:00:00.000Z' });
    expect(advance(d, nextMonth + 1000, 60 * 24 * HOUR)).toBe(false);
  });

  it('releases a hold after its TTL and still charges it once when the call settles late', () => {
    const d = budget(1);
    ask(d, 'slow', 0.5);
    advance(d, NOW + 2 * HOUR, HOUR);
    expect(d.reserved).toBe(0);
    expect(ask(d, 'slow', 0.5)).toMatchObject({ granted: true, replayed: true });
    expect(settle(d, 'slow', toMicros(0.5)).applied).toBe(true);
    expect(settle(d, 'slow', toMicros(0.5)).applied).toBe(false);
    expect(d.spent).toBe(toMicros(0.5));
  });

  it('computes day and month periods in UTC', () => {
    expect(new Date(periodStartOf('day', NOW)).toISOString()).toBe('2026-05-17T00:00:00.000Z');
    expect(new Date(periodEndOf('day', periodStartOf('day', NOW))).toISOString()).toBe('2026-05-18T00:00:00.000Z');
    expect(new Date(periodEndOf('month', Date.UTC(2026, 11, 1))).toISOString()).toBe('2027-01-01T00:00:00.000Z');
  });
});

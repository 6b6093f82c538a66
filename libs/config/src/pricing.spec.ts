import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from './config.js';
import { ceilUsd, DEFAULT_PRICES, llmCostUsd, llmWorstCaseUsd, parsePrices, toolPrice } from './pricing.js';

describe('the price table', () => {
  it('defaults to free tools and documented model prices', () => {
    const cfg = loadConfig('orchestrator', {});
    expect(cfg.prices).toBe(DEFAULT_PRICES);
    expect(toolPrice(cfg.prices, 'acme', 'noop')).toBe(0);
    expect(cfg.prices.models['gpt-4o']).toEqual({ inputPer1M: 2.5, outputPer1M: 10 });
    expect(cfg.loopDetection).toEqual({ maxIdenticalCalls: 3, noProgressSteps: 8 });
    expect(cfg.budgetHoldTtlMs).toBe(3_600_000);
    expect(cfg.budgetStateCacheMs).toBe(1000);
  });

  it('reads AGENTMESH_PRICES: per-tenant tool prices beat per-tool ones, which beat the default', () => {
    const { prices, problems } = parsePrices(JSON.stringify({ tools: { search: 0.01, 'acme/search': 0.005 }, defaultToolUsd: 0.001, models: { tiny: { inputPer1M: 1, outputPer1M: 2 } } }));
    expect(problems).toEqual([]);
    expect(toolPrice(prices, 'acme', 'search')).toBe(0.005);
    expect(toolPrice(prices, 'globex', 'search')).toBe(0.01);
    expect(toolPrice(prices, 'globex', 'other')).toBe(0.001);
    expect(prices.models['gpt-4o']).toBeDefined(); // defaults stay unless overridden
    expect(llmCostUsd(prices, 'tiny', { inputTokens: 1000, outputTokens: 500 })).toBe(0.002);
    expect(llmWorstCaseUsd(prices, 'tiny', 1000, 1000)).toBe(0.003);
    expect(llmWorstCaseUsd(prices, 'unknown-model', 0)).toBe(ceilUsd(4096 * 15 / 1e6));
  });

  it('rounds worst cases up to whole micro-dollars', () => {
    expect(ceilUsd(0.25)).toBe(0.25);
    expect(ceilUsd(0.1 + 0.2)).toBe(0.3);
    expect(ceilUsd(0.0000001)).toBe(0.000001);
  });

  it('refuses a malformed price table at start-up, naming the problem', () => {
    expect(() => loadConfig('cost-governor', { AGENTMESH_PRICES: '{"tools": {"search": -1}}' })).toThrow(ConfigError);
    expect(parsePrices('nope').problems).toEqual(['AGENTMESH_PRICES must be JSON']);
    expect(parsePrices('{"tool": {}}').problems[0]).toContain('unknown key "tool"');
    expect(() => loadConfig('orchestrator', { AGENTMESH_LOOP_MAX_IDENTICAL_CALLS: '-1' })).toThrow(ConfigError);
  });
});

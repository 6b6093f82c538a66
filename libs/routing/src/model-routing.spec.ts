import { describe, expect, it } from '@jest/globals';
import { RoutingError } from './errors.js';
import { chooseModel, DEFAULT_MODEL_RULES, validateModelRouting, type ModelRoutingConfig } from './model-routing.js';

const config: ModelRoutingConfig = validateModelRouting({
  cheapModel: 'small-8b',
  frontierModel: 'frontier-xl',
  rules: DEFAULT_MODEL_RULES,
  fallback: 'frontier',
});

describe('model routing', () => {
  it('sends easy steps to the cheap model and hard ones to the frontier model', () => {
    expect(chooseModel({ hint: 'easy', promptTokens: 5000, toolCount: 3 }, config)).toEqual({ model: 'small-8b', tier: 'cheap', rule: 'planner-easy' });
    expect(chooseModel({ hint: 'hard', promptTokens: 100, toolCount: 0 }, config)).toEqual({ model: 'frontier-xl', tier: 'frontier', rule: 'planner-hard' });
  });

  it('overrides an easy hint when the prompt is too long or there are many tools', () => {
    expect(chooseModel({ hint: 'easy', promptTokens: 40_000, toolCount: 1 }, config).rule).toBe('long-context');
    expect(chooseModel({ hint: 'easy', promptTokens: 500, toolCount: 12 }, config).rule).toBe('many-tools');
  });

  it('uses the cheap model for small unhinted steps and the fallback otherwise', () => {
    expect(chooseModel({ promptTokens: 800, toolCount: 1 }, config)).toMatchObject({ tier: 'cheap', rule: 'small-step' });
    expect(chooseModel({ promptTokens: 8000, toolCount: 4 }, config)).toMatchObject({ tier: 'frontier', rule: 'fallback' });
  });

  it('applies custom rules in order, first match wins', () => {
    const custom = validateModelRouting({
      cheapModel: 'c',
      frontierModel: 'f',
      fallback: 'cheap',
      rules: [
        { name: 'big-prompt', when: { minPromptTokens: 1000 }, use: 'frontier' },
        { name: 'never-reached-for-big', when: { minPromptTokens: 500 }, use: 'cheap' },
      ],
    });
    expect(chooseModel({ promptTokens: 2000, toolCount: 0 }, custom).rule).toBe('big-prompt');
    expect(chooseModel({ promptTokens: 600, toolCount: 0 }, custom).rule).toBe('never-reached-for-big');
    expect(chooseModel({ promptTokens: 10, toolCount: 0 }, custom)).toEqual({ model: 'c', tier: 'cheap', rule: 'fallback' });
  });

  it('rejects a bad configuration, listing every problem', () => {
    let err: unknown;
    try {
      validateModelRouting({
        cheapModel: '',
        frontierModel: 'f',
        fallback: 'frontier',
        rules: [
          { name: 'x', when: { minTools: 5, maxTools: 2 }, use: 'cheap' },
          { name: 'x', when: { minPromptTokens: -1 }, use: 'frontier' },
        ],
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RoutingError);
    const message = (err as RoutingError).message;
    expect((err as RoutingError).code).toBe('INVALID_MODEL_RULES');
    for (const part of ['cheapModel', 'can never match', 'repeats the name', 'minPromptTokens']) expect(message).toContain(part);
  });
});

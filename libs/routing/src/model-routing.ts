import { RoutingError } from './errors.js';

/** The planner's hint about a step. */
export type Difficulty = 'easy' | 'hard';
export type ModelTier = 'cheap' | 'frontier';

export interface ModelRouteInput {
  readonly hint?: Difficulty;
  readonly promptTokens: number;
  readonly toolCount: number;
}

/** A rule matches when every condition it names holds; unnamed conditions are ignored. */
export interface ModelRule {
  readonly name: string;
  readonly when: {
    readonly hint?: Difficulty;
    readonly minPromptTokens?: number;
    readonly maxPromptTokens?: number;
    readonly minTools?: number;
    readonly maxTools?: number;
  };
  readonly use: ModelTier;
}

export interface ModelRoutingConfig {
  readonly cheapModel: string;
  readonly frontierModel: string;
  /** Evaluated in order; the first match wins. */
  readonly rules: readonly ModelRule[];
  /** Tier when no rule matches. */
  readonly fallback: ModelTier;
}

export interface ModelChoice {
  readonly model: string;
  readonly tier: ModelTier;
  /** The rule that decided, or 'fallback'. */
  readonly rule: string;
}

/**
 * Default rules: long prompts and many tools need the frontier model whatever the hint; then the
 * planner's hint decides; short, tool-light steps without a hint go to the cheap model.
 */
export const DEFAULT_MODEL_RULES: readonly ModelRule[] = [
  { name: 'long-context', when: { minPromptTokens: 32_001 }, use: 'frontier' },
  { name: 'many-tools', when: { minTools: 9 }, use: 'frontier' },
  { name: 'planner-hard', when: { hint: 'hard' }, use: 'frontier' },
  { name: 'planner-easy', when: { hint: 'easy' }, use: 'cheap' },
  { name: 'small-step', when: { maxPromptTokens: 2_000, maxTools: 2 }, use: 'cheap' },
];

function matches(rule: ModelRule, input: ModelRouteInput): boolean {
  const w = rule.when;
  if (w.hint !== undefined && w.hint !== input.hint) return false;
  if (w.minPromptTokens !== undefined && input.promptTokens < w.minPromptTokens) return false;
  if (w.maxPromptTokens !== undefined && input.promptTokens > w.maxPromptTokens) return false;
  if (w.minTools !== undefined && input.toolCount < w.minTools) return false;
  if (w.maxTools !== undefined && input.toolCount > w.maxTools) return false;
  return true;
}

/** Checks a config once (e.g. at start-up), throwing RoutingError INVALID_MODEL_RULES listing every problem. */
export function validateModelRouting(config: ModelRoutingConfig): ModelRoutingConfig {
  const problems: string[] = [];
  if (!config.cheapModel) problems.push('cheapModel is empty');
  if (!config.frontierModel) problems.push('frontierModel is empty');
  if (config.fallback !== 'cheap' && config.fallback !== 'frontier') problems.push(`fallback must be cheap or frontier`);
  const names = new Set<string>();
  config.rules.forEach((r, i) => {
    if (!r.name) problems.push(`rules[${i}] has no name`);
    if (names.has(r.name)) problems.push(`rules[${i}] repeats the name ${r.name}`);
    names.add(r.name);
    if (r.use !== 'cheap' && r.use !== 'frontier') problems.push(`rules[${i}].use must be cheap or frontier`);
    const w = r.when;
    if (w.hint !== undefined && w.hint !== 'easy' && w.hint !== 'hard') problems.push(`rules[${i}].when.hint must be easy or hard`);
    for (const k of ['minPromptTokens', 'maxPromptTokens', 'minTools', 'maxTools'] as const) {
      const v = w[k];
      if (v !== undefined && !(Number.isInteger(v) && v >= 0)) problems.push(`rules[${i}].when.${k} must be a non-negative integer`);
    }
    if (w.minPromptTokens !== undefined && w.maxPromptTokens !== undefined && w.minPromptTokens > w.maxPromptTokens) {
      problems.push(`rules[${i}] can never match (minPromptTokens > maxPromptTokens)`);
    }
    if (w.minTools !== undefined && w.maxTools !== undefined && w.minTools > w.maxTools) {
      problems.push(`rules[${i}] can never match (minTools > maxTools)`);
    }
  });
  if (problems.length > 0) throw new RoutingError('INVALID_MODEL_RULES', `invalid model routing: ${problems.join('; ')}`);
  return Object.freeze({ ...config, rules: Object.freeze(config.rules.map((r) => Object.freeze({ ...r, when: Object.freeze({ ...r.when }) }))) });
}

/** Chooses the cheap or the frontier model for one step. */
export function chooseModel(input: ModelRouteInput, config: ModelRoutingConfig): ModelChoice {
  for (const rule of config.rules) {
    if (matches(rule, input)) return { tier: rule.use, model: rule.use === 'cheap' ? config.cheapModel : config.frontierModel, rule: rule.name };
  }
  const tier = config.fallback;
  return { tier, model: tier === 'cheap' ? config.cheapModel : config.frontierModel, rule: 'fallback' };
}

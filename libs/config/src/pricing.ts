/**
 * The price table: what a model's tokens and a tool's calls cost, in USD. Read from
 * `AGENTMESH_PRICES` (JSON) on top of DEFAULT_PRICES:
 *
 * ```json
 * {
 *   "models": { "gpt-4o": { "inputPer1M": 2.5, "outputPer1M": 10 } },
 *   "defaultModel": { "inputPer1M": 5, "outputPer1M": 15 },
 *   "tools": { "search": 0.01, "acme/search": 0.005 },
 *   "defaultToolUsd": 0,
 *   "defaultMaxOutputTokens": 4096
 * }
 * ```
 *
 * Tool prices are per call, by tool name or `<tenant>/<tool>` (the tenant entry wins). Builtin and
 * unlisted tools cost `defaultToolUsd` (0: free, and a free call moves no money). Model prices are
 * per million tokens; an unlisted model costs `defaultModel`. Amounts are rounded to whole
 * micro-dollars (worst cases up, actual costs to nearest).
 */
export interface ModelPrice {
  inputPer1M: number;
  outputPer1M: number;
}

export interface PriceTable {
  readonly models: Readonly<Record<string, ModelPrice>>;
  readonly defaultModel: ModelPrice;
  readonly tools: Readonly<Record<string, number>>;
  readonly defaultToolUsd: number;
  /** Output tokens assumed for a worst case when a call sets no max_tokens. */
  readonly defaultMaxOutputTokens: number;
}

/** Documented defaults: public list prices of a few common models (USD per 1M tokens); tools free. */
export const DEFAULT_PRICES: PriceTable = Object.freeze({
  models: Object.freeze({
    'gpt-4o': { inputPer1M: 2.5, outputPer1M: 10 },
    'gpt-4o-mini': { inputPer1M: 0.15, outputPer1M: 0.6 },
    'claude-sonnet-4': { inputPer1M: 3, outputPer1M: 15 },
    'claude-haiku-3.5': { inputPer1M: 0.8, outputPer1M: 4 },
    'llama-3.1-8b-instruct': { inputPer1M: 0.05, outputPer1M: 0.08 },
  }),
  defaultModel: { inputPer1M: 5, outputPer1M: 15 },
  tools: Object.freeze({}),
  defaultToolUsd: 0,
  defaultMaxOutputTokens: 4096,
});

const MICRO = 1_000_000;
const isPrice = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0 && n <= 1_000_000;
const isModelPrice = (v: unknown): v is ModelPrice =>
  !!v && typeof v === 'object' && isPrice((v as ModelPrice).inputPer1M) && isPrice((v as ModelPrice).outputPer1M);

/** Parses `AGENTMESH_PRICES`; returns the table or the problems found. Unknown keys are problems. */
export function parsePrices(raw: string | undefined): { prices: PriceTable; problems: string[] } {
  if (raw === undefined || raw.trim() === '') return { prices: DEFAULT_PRICES, problems: [] };
  let v: unknown;
  try { v = JSON.parse(raw); } catch { return { prices: DEFAULT_PRICES, problems: ['AGENTMESH_PRICES must be JSON'] }; }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { prices: DEFAULT_PRICES, problems: ['AGENTMESH_PRICES must be a JSON object'] };
  const o = v as Record<string, unknown>;
  const problems: string[] = [];
  const known = new Set(['models', 'defaultModel', 'tools', 'defaultToolUsd', 'defaultMaxOutputTokens']);
  for (const k of Object.keys(o)) if (!known.has(k)) problems.push(`AGENTMESH_PRICES: unknown key "${k}"`);
  const models: Record<string, ModelPrice> = { ...DEFAULT_PRICES.models };
  if (o.models !== undefined) {
    if (!o.models || typeof o.models !== 'object') problems.push('AGENTMESH_PRICES.models must be an object');
    else for (const [name, p] of Object.entries(o.models)) {
      if (isModelPrice(p)) models[name] = { inputPer1M: p.inputPer1M, outputPer1M: p.outputPer1M };
      else problems.push(`AGENTMESH_PRICES.models.${name} must be {inputPer1M, outputPer1M} with prices >= 0`);
    }
  }
  const tools: Record<string, number> = {};
  if (o.tools !== undefined) {
    if (!o.tools || typeof o.tools !== 'object') problems.push('AGENTMESH_PRICES.tools must be an object');
    else for (const [name, p] of Object.entries(o.tools)) {
      if (isPrice(p)) tools[name] = p;
      else problems.push(`AGENTMESH_PRICES.tools.${name} must be a price in USD >= 0`);
    }
  }
  let defaultModel = DEFAULT_PRICES.defaultModel;
  if (o.defaultModel !== undefined) {
    if (isModelPrice(o.defaultModel)) defaultModel = { inputPer1M: o.defaultModel.inputPer1M, outputPer1M: o.defaultModel.outputPer1M };
    else problems.push('AGENTMESH_PRICES.defaultModel must be {inputPer1M, outputPer1M}');
  }
  let defaultToolUsd = DEFAULT_PRICES.defaultToolUsd;
  if (o.defaultToolUsd !== undefined) {
    if (isPrice(o.defaultToolUsd)) defaultToolUsd = o.defaultToolUsd;
    else problems.push('AGENTMESH_PRICES.defaultToolUsd must be a price in USD >= 0');
  }
  let defaultMaxOutputTokens = DEFAULT_PRICES.defaultMaxOutputTokens;
  if (o.defaultMaxOutputTokens !== undefined) {
    const n = o.defaultMaxOutputTokens;
    if (typeof n === 'number' && Number.isInteger(n) && n > 0) defaultMaxOutputTokens = n;
    else problems.push('AGENTMESH_PRICES.defaultMaxOutputTokens must be a positive integer');
  }
  return {
    prices: Object.freeze({ models: Object.freeze(models), defaultModel, tools: Object.freeze(tools), defaultToolUsd, defaultMaxOutputTokens }),
    problems,
  };
}

/** Whole micro-dollars, rounded up (worst cases never under-reserve). */
export const ceilUsd = (usd: number): number => Math.ceil(Math.round(usd * MICRO * 1000) / 1000) / MICRO;
/** Whole micro-dollars, rounded to nearest. */
export const roundUsd = (usd: number): number => Math.round(usd * MICRO) / MICRO;

/** The price of one call of a tool; `<tenant>/<tool>` beats `<tool>` beats the default. */
export function toolPrice(p: PriceTable, tenantId: string, tool: string): number {
  return p.tools[`${tenantId}/${tool}`] ?? p.tools[tool] ?? p.defaultToolUsd;
}

export function modelPrice(p: PriceTable, model: string): ModelPrice {
  return p.models[model] ?? p.defaultModel;
}

/** The most an LLM call can cost: its prompt plus the most output it may produce. */
export function llmWorstCaseUsd(p: PriceTable, model: string, inputTokens: number, maxOutputTokens?: number): number {
  const m = modelPrice(p, model);
  const out = maxOutputTokens ?? p.defaultMaxOutputTokens;
  return ceilUsd((inputTokens * m.inputPer1M + out * m.outputPer1M) / MICRO);
}

/**
 * The price used for a worst case when the model is not known in advance (the router picks it from
 * a hint): the dearest input and output prices of the table (listed models and the default).
 */
export function dearestModelPrice(p: PriceTable): ModelPrice {
  let inputPer1M = p.defaultModel.inputPer1M;
  let outputPer1M = p.defaultModel.outputPer1M;
  for (const m of Object.values(p.models)) {
    inputPer1M = Math.max(inputPer1M, m.inputPer1M);
    outputPer1M = Math.max(outputPer1M, m.outputPer1M);
  }
  return { inputPer1M, outputPer1M };
}

/** The most an LLM call can cost at a given price: its prompt plus the most output it may produce. */
export function llmWorstCaseAtPrice(m: ModelPrice, inputTokens: number, maxOutputTokens: number): number {
  return ceilUsd((inputTokens * m.inputPer1M + maxOutputTokens * m.outputPer1M) / MICRO);
}

/** What an LLM call cost, from its reported token usage. */
export function llmCostUsd(p: PriceTable, model: string, usage: { inputTokens: number; outputTokens: number }): number {
  const m = modelPrice(p, model);
  return roundUsd((usage.inputTokens * m.inputPer1M + usage.outputTokens * m.outputPer1M) / MICRO);
}

export { loadConfig, ConfigError, type AppConfig } from './config.js';
export { SERVICES, SERVICE_NAMES, type ServiceName } from './services.js';
export {
  DEFAULT_PRICES, parsePrices, toolPrice, modelPrice, llmWorstCaseUsd, llmCostUsd, ceilUsd, roundUsd,
  type PriceTable, type ModelPrice,
} from './pricing.js';

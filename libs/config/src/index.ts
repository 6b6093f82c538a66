export { loadConfig, ConfigError, type AppConfig } from './config.js';
export { ConfigSecret, parseMasterKeys, type MasterKeyConfig, type MasterKeysConfig } from './secrets.js';
export { SERVICES, SERVICE_NAMES, type ServiceName } from './services.js';
export {
  DEFAULT_PRICES, parsePrices, toolPrice, modelPrice, llmWorstCaseUsd, llmCostUsd, ceilUsd, roundUsd, dearestModelPrice, llmWorstCaseAtPrice,
  type PriceTable, type ModelPrice,
} from './pricing.js';
export {
  parseReplicaSpec, parseReplicas, parseModelRouting, readInferenceConfig,
  type InferenceConfig, type ReplicaSpec, type ReplicaKind, type ModelRoutingSettings, type SimulatorSettings,
} from './inference.js';

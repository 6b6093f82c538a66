export { PrefixKvCache, type KvCacheOptions, type KvLease, type KvCacheStats } from './kv-cache.js';
export {
  ReplicaEngine,
  EngineRequestError,
  DEFAULT_REPLICA_PARAMS,
  type ReplicaParams,
  type EngineRequest,
  type EngineListener,
  type EngineStats,
  type PrefillInfo,
} from './engine.js';
export { renderPrompt, promptBlockKeys, countTokens, messageText, type ChatMessage } from './prompt.js';
export { matchScript, parseScript, type ScriptRule, type ScriptMatcher, type ScriptReply, type ScriptToolCall } from './script.js';
export { startReplicaSimulator, type ReplicaSimulator, type ReplicaSimulatorOptions, type ReplicaSimulatorStats } from './server.js';

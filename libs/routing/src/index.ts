export { RoutingError, isRoutingError, type RoutingErrorCode } from './errors.js';
export { xxhash32, fnv1a32 } from './hash.js';
export {
  ConsistentHashRing,
  boundedLoadLimit,
  DEFAULT_LOAD_FACTOR,
  DEFAULT_VNODES,
  type HashRingOptions,
  type BoundedLookup,
} from './ring.js';
export type { RouteDecision, RouteAccepted, RouteRefused, RouteOutcome, RefusalReason, ReplicaOptions, ReplicaView } from './types.js';
export {
  SessionRouter,
  parseRouterState,
  type SessionRouterOptions,
  type AssignmentView,
  type RouterState,
  type RouterStats,
} from './session-router.js';
export {
  createPolicy,
  POLICY_NAMES,
  RoundRobinPolicy,
  LeastLoadedPolicy,
  ConsistentHashPolicy,
  BoundedStickyPolicy,
  type RoutingPolicy,
  type PolicyName,
  type PolicyOptions,
} from './policies.js';
export {
  chooseModel,
  validateModelRouting,
  DEFAULT_MODEL_RULES,
  type Difficulty,
  type ModelTier,
  type ModelRule,
  type ModelRouteInput,
  type ModelRoutingConfig,
  type ModelChoice,
} from './model-routing.js';

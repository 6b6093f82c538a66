export {
  TENANT_ROLES,
  isTenantRole,
  BUDGET_STATES,
  POLICY_ATTRIBUTE_NAMES,
  OPERATIONS,
  OPERATION_IDS,
  ROUTED_OPERATION_IDS,
  RESOURCES,
  isOperationId,
  getOperation,
  type TenantRole,
  type Access,
  type OperationScope,
  type BudgetState,
  type OperationSpec,
  type OperationId,
  type PolicyAttributeName,
} from './operations.js';
export {
  POLICY_MODEL,
  PLATFORM_DOMAIN,
  PLATFORM_ADMIN,
  DEFAULT_TENANT_POLICY,
  PLATFORM_POLICY,
  buildEnforcer,
  type PolicyRow,
  type PolicyRows,
} from './model.js';
export {
  normalizeCondition,
  evaluateCondition,
  ConditionSyntaxError,
  type Attributes,
  type AttributeValue,
} from './condition.js';
export { normalizeRule, ruleKey, type TenantRule, type PermissionRule, type RoleAssignment } from './rules.js';
export { InMemoryPolicyAdapter, type PolicyAdapter, type TenantPolicy } from './adapter.js';
export { KvPolicyAdapter } from './kv-adapter.js';
export { PolicyRuleError, PolicyConflictError } from './errors.js';
export {
  NatsPolicyWatcher,
  POLICY_CHANGED_SUBJECT,
  type PolicyWatcher,
  type PolicyChangedMessage,
  type NatsPolicyWatcherOptions,
} from './nats-watcher.js';
export {
  PolicyService,
  PolicyReloadError,
  type CanRequest,
  type Decision,
  type DecisionReason,
  type MatchedRule,
  type Principal,
  type TenantPrincipal,
  type PlatformAdminPrincipal,
  type PolicyServiceOptions,
} from './policy.service.js';

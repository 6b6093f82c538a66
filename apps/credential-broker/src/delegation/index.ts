export { DelegationError, type DelegationErrorCode } from './errors.js';
export { InMemoryReplayCache, type InMemoryReplayCacheOptions, type ReplayCache } from './replay-cache.js';
export {
  generateDelegationKeys,
  importDelegationKeys,
  type DelegationAlgorithm,
  type DelegationKeyPair,
  type DelegationSigningKey,
  type DelegationVerificationKey,
} from './keys.js';
export {
  DELEGATION_AUDIENCE,
  DELEGATION_ISSUER,
  DELEGATION_TYPE,
  DelegationService,
  intersectScopes,
  toolAllowed,
  type CredentialPolicy,
  type CredentialPolicySource,
  type DelegationClaims,
  type DelegationRevocations,
  type DelegationServiceOptions,
  type MintRequest,
  type MintedDelegation,
  type RedeemExpectation,
  type RedeemedDelegation,
  type ToolRef,
} from './delegation-service.js';

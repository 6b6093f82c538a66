import { randomUUID } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { SecretValue } from '../crypto/secret-value.js';
import { DelegationError, type DelegationErrorCode } from './errors.js';
import type { DelegationSigningKey, DelegationVerificationKey } from './keys.js';
import type { ReplayCache } from './replay-cache.js';

export const DELEGATION_AUDIENCE = 'agentmesh-tool-runner';
export const DELEGATION_ISSUER = 'agentmesh-credential-broker';
/** JWS `typ` header: a delegation cannot be confused with any other JWT signed by the same key. */
export const DELEGATION_TYPE = 'agentmesh-delegation+jwt';

export interface ToolRef {
  name: string;
  version: string;
}

/** The non-secret part of a stored credential that decides who may use it. */
export interface CredentialPolicy {
  name: string;
  /** Tool names (any version) or `name@version` (that version only). */
  allowedTools: readonly string[];
  scopes: readonly string[];
  /** A revoked credential can be neither delegated nor redeemed. */
  revoked?: boolean;
}

/** Current credential policies, read at redemption so a revocation or narrowing takes effect at once. */
export interface CredentialPolicySource {
  get(tenantId: string, credentialName: string): Promise<CredentialPolicy | undefined>;
}

/** Revocation of individual delegations (for example every delegation of a cancelled run). */
export interface DelegationRevocations {
  isRevoked(delegation: DelegationClaims): Promise<boolean>;
}

export interface MintRequest {
  tenantId: string;
  runId: string;
  stepId: string;
  tool: ToolRef;
  credential: CredentialPolicy;
  /** Scopes the tool declares; the delegation carries their intersection with the credential's. */
  requestedScopes: readonly string[];
  /** Lifetime in seconds; defaults to the service's default (60 s), capped by its maximum. */
  ttlSeconds?: number;
}

export interface MintedDelegation {
  /** The compact JWT. A bearer capability: keep it out of journals and logs. */
  token: SecretValue;
  jti: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  scopes: string[];
}

export interface DelegationClaims {
  jti: string;
  tenantId: string;
  runId: string;
  stepId: string;
  tool: ToolRef;
  credentialName: string;
  scopes: string[];
  /** Milliseconds since the epoch. */
  issuedAt: number;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export interface RedeemExpectation {
  /** The tenant the redeemer is acting for. */
  tenantId: string;
  /** The tool the redeemer is about to run. */
  tool: ToolRef;
}

export interface RedeemedDelegation extends DelegationClaims {
  /** The credential's policy as read at redemption. */
  credential: CredentialPolicy;
}

export interface DelegationServiceOptions {
  signingKey: DelegationSigningKey;
  /** Keys accepted on redemption; include the signing key's public half, and old keys during rotation. */
  verificationKeys: readonly DelegationVerificationKey[];
  replayCache: ReplayCache;
  credentials: CredentialPolicySource;
  revocations?: DelegationRevocations;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** Default 60. */
  defaultTtlSeconds?: number;
  /** Default 300. */
  maxTtlSeconds?: number;
  /** Allowed clock difference between replicas, in seconds. Default 0. */
  clockToleranceSeconds?: number;
  /** Default `agentmesh-tool-runner`. */
  audience?: string;
  /** Default `agentmesh-credential-broker`. */
  issuer?: string;
}

interface WireClaims extends JWTPayload {
  tid: string;
  run: string;
  step: string;
  tool: string;
  tver: string;
  cred: string;
  scope: string;
}

const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 scope-token

/**
 * Mints and redeems delegations: short-lived, single-use, signed statements that one step of one run
 * may use one credential for one tool version with a set of scopes. The broker mints one per tool
 * call; the tool-runner presents it back and gets the secret only if every check passes.
 */
export class DelegationService {
  readonly #signingKey: DelegationSigningKey;
  readonly #verificationKeys: Map<string, DelegationVerificationKey>;
  readonly #replayCache: ReplayCache;
  readonly #credentials: CredentialPolicySource;
  readonly #revocations: DelegationRevocations | undefined;
  readonly #now: () => number;
  readonly #defaultTtlSeconds: number;
  readonly #maxTtlSeconds: number;
  readonly #clockToleranceSeconds: number;
  readonly #audience: string;
  readonly #issuer: string;

  constructor(options: DelegationServiceOptions) {
    this.#signingKey = options.signingKey;
    this.#verificationKeys = new Map(options.verificationKeys.map((key) => [key.kid, key]));
    this.#replayCache = options.replayCache;
    this.#credentials = options.credentials;
    this.#revocations = options.revocations;
    this.#now = options.now ?? Date.now;
    this.#defaultTtlSeconds = options.defaultTtlSeconds ?? 60;
    this.#maxTtlSeconds = options.maxTtlSeconds ?? 300;
    this.#clockToleranceSeconds = options.clockToleranceSeconds ?? 0;
    this.#audience = options.audience ?? DELEGATION_AUDIENCE;
    this.#issuer = options.issuer ?? DELEGATION_ISSUER;
    if (!(this.#defaultTtlSeconds > 0 && this.#defaultTtlSeconds <= this.#maxTtlSeconds)) {
      throw new DelegationError('invalid_request', 'defaultTtlSeconds must be positive and at most maxTtlSeconds');
    }
  }

  async mint(request: MintRequest): Promise<MintedDelegation> {
    const { tenantId, runId, stepId, tool, credential } = request;
    for (const [what, value] of [
      ['tenantId', tenantId],
      ['runId', runId],
      ['stepId', stepId],
      ['tool.name', tool?.name],
      ['tool.version', tool?.version],
      ['credential.name', credential?.name],
    ] as const) {
      if (typeof value !== 'string' || value.length === 0) {
        throw new DelegationError('invalid_request', `${what} must be a non-empty string`);
      }
    }
    const ttl = request.ttlSeconds ?? this.#defaultTtlSeconds;
    if (!Number.isInteger(ttl) || ttl <= 0 || ttl > this.#maxTtlSeconds) {
      throw new DelegationError('invalid_request', `ttlSeconds must be an integer in 1..${this.#maxTtlSeconds}`);
    }
    if (credential.revoked) {
      throw new DelegationError('revoked', `credential ${credential.name} is revoked`);
    }
    if (!toolAllowed(credential.allowedTools, tool)) {
      throw new DelegationError('tool_not_allowed', `tool ${toolId(tool)} may not use credential ${credential.name}`);
    }
    if (![...credential.scopes, ...request.requestedScopes].every((scope) => SCOPE.test(scope))) {
      throw new DelegationError('invalid_request', 'scopes must be RFC 6749 scope tokens');
    }
    const scopes = intersectScopes(credential.scopes, request.requestedScopes);
    if (scopes.length === 0 && request.requestedScopes.length > 0) {
      throw new DelegationError(
        'scope_not_allowed',
        `none of the scopes tool ${toolId(tool)} requests are allowed by credential ${credential.name}`,
      );
    }

    const issuedAt = Math.floor(this.#now() / 1000);
    const expiresAt = issuedAt + ttl;
    const jti = randomUUID();
    const claims: WireClaims = {
      tid: tenantId,
      run: runId,
      step: stepId,
      tool: tool.name,
      tver: tool.version,
      cred: credential.name,
      scope: scopes.join(' '),
    };
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: this.#signingKey.alg, kid: this.#signingKey.kid, typ: DELEGATION_TYPE })
      .setIssuer(this.#issuer)
      .setAudience(this.#audience)
      .setJti(jti)
      .setIssuedAt(issuedAt)
      .setExpirationTime(expiresAt)
      .sign(this.#signingKey.privateKey);
    return { token: SecretValue.from(token), jti, expiresAt: expiresAt * 1000, scopes };
  }

  /**
   * Verifies a delegation for the redeemer's tenant and tool, against the credential's current
   * policy, and consumes it. Throws DelegationError on any failure; a consumed delegation cannot be
   * redeemed again, whatever the outcome of the call it was used for.
   */
  async redeem(token: SecretValue | string, expected: RedeemExpectation): Promise<RedeemedDelegation> {
    const claims = await this.verify(token);
    if (claims.tenantId !== expected.tenantId) {
      throw new DelegationError('wrong_tenant', 'delegation was minted for another tenant');
    }
    if (claims.tool.name !== expected.tool.name || claims.tool.version !== expected.tool.version) {
      throw new DelegationError(
        'tool_not_allowed',
        `delegation was minted for tool ${toolId(claims.tool)}, not ${toolId(expected.tool)}`,
      );
    }
    const credential = await this.#credentials.get(claims.tenantId, claims.credentialName);
    if (!credential || credential.revoked) {
      throw new DelegationError('revoked', `credential ${claims.credentialName} was deleted or revoked`);
    }
    if (!toolAllowed(credential.allowedTools, claims.tool)) {
      throw new DelegationError(
        'tool_not_allowed',
        `tool ${toolId(claims.tool)} may not use credential ${claims.credentialName}`,
      );
    }
    if (this.#revocations && (await this.#revocations.isRevoked(claims))) {
      throw new DelegationError('revoked', 'delegation was revoked');
    }
    const scopes = intersectScopes(credential.scopes, claims.scopes);
    if (scopes.length === 0 && claims.scopes.length > 0) {
      throw new DelegationError('scope_not_allowed', `credential ${claims.credentialName} no longer allows these scopes`);
    }
    const rememberUntil = claims.expiresAt + this.#clockToleranceSeconds * 1000;
    if (!(await this.#replayCache.consume(claims.jti, rememberUntil))) {
      throw new DelegationError('replayed', 'delegation was already redeemed');
    }
    return { ...claims, scopes, credential };
  }

  /** Checks signature, type, issuer, audience and expiry, without consuming. */
  async verify(token: SecretValue | string): Promise<DelegationClaims> {
    const compact = SecretValue.isSecretValue(token) ? token.reveal() : token;
    if (typeof compact !== 'string' || compact.length === 0 || compact.length > 8192) {
      throw new DelegationError('invalid_token', 'delegation is not a compact JWT');
    }
    let payload: JWTPayload;
    try {
      const result = await jwtVerify(
        compact,
        (header) => {
          const key = header.kid === undefined ? undefined : this.#verificationKeys.get(header.kid);
          if (!key || key.alg !== header.alg) {
            throw new DelegationError('bad_signature', 'delegation is signed with an unknown key or algorithm');
          }
          return key.publicKey;
        },
        {
          algorithms: [...new Set([...this.#verificationKeys.values()].map((key) => key.alg))],
          audience: this.#audience,
          issuer: this.#issuer,
          typ: DELEGATION_TYPE,
          currentDate: new Date(this.#now()),
          clockTolerance: this.#clockToleranceSeconds,
          requiredClaims: ['jti', 'iat', 'exp'],
        },
      );
      payload = result.payload;
    } catch (error) {
      throw toDelegationError(error);
    }
    return parseClaims(payload);
  }
}

/** Scopes present in both lists, in the order requested, without duplicates. */
export function intersectScopes(allowed: readonly string[], requested: readonly string[]): string[] {
  const allowedSet = new Set(allowed);
  return [...new Set(requested.filter((scope) => allowedSet.has(scope)))];
}

/** `name` allows every version of the tool; `name@version` allows that version only. */
export function toolAllowed(allowedTools: readonly string[], tool: ToolRef): boolean {
  return allowedTools.some((entry) => entry === tool.name || entry === toolId(tool));
}

function toolId(tool: ToolRef): string {
  return `${tool.name}@${tool.version}`;
}

function toDelegationError(error: unknown): DelegationError {
  if (error instanceof DelegationError) return error;
  const code = joseCode(error);
  return new DelegationError(code, messages[code], { cause: error });
}

const messages: Record<DelegationErrorCode, string> = {
  expired: 'delegation has expired',
  replayed: 'delegation was already redeemed',
  wrong_audience: 'delegation was minted for another audience',
  wrong_tenant: 'delegation was minted for another tenant',
  tool_not_allowed: 'tool is not allowed',
  revoked: 'delegation was revoked',
  bad_signature: 'delegation signature does not verify',
  invalid_token: 'token is not a valid delegation',
  scope_not_allowed: 'scopes are not allowed',
  invalid_request: 'invalid request',
};

function joseCode(error: unknown): DelegationErrorCode {
  if (error instanceof joseErrors.JWTExpired) return 'expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return error.claim === 'aud' ? 'wrong_audience' : 'invalid_token';
  }
  if (
    error instanceof joseErrors.JWSSignatureVerificationFailed ||
    error instanceof joseErrors.JOSEAlgNotAllowed ||
    error instanceof joseErrors.JOSENotSupported
  ) {
    return 'bad_signature';
  }
  if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid) return 'invalid_token';
  return 'bad_signature';
}

function parseClaims(payload: JWTPayload): DelegationClaims {
  const p = payload as Partial<WireClaims>;
  const strings = [p.jti, p.tid, p.run, p.step, p.tool, p.tver, p.cred];
  if (strings.some((v) => typeof v !== 'string' || v.length === 0) || typeof p.scope !== 'string') {
    throw new DelegationError('invalid_token', 'delegation is missing claims');
  }
  return {
    jti: p.jti as string,
    tenantId: p.tid as string,
    runId: p.run as string,
    stepId: p.step as string,
    tool: { name: p.tool as string, version: p.tver as string },
    credentialName: p.cred as string,
    scopes: p.scope === '' ? [] : p.scope.split(' '),
    issuedAt: (p.iat as number) * 1000,
    expiresAt: (p.exp as number) * 1000,
  };
}

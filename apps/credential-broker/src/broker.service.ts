import { Inject, Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AgentmeshError, BUCKETS, invalid, isResourceName, isRunId, isTenantId, MAX_DELEGATION_TTL_SECONDS, notFound, VERSION,
  type CredentialFailure, type CredentialInjection, type ErrorCode, type KeyringStatus, type RotationReport, type RpcMap,
} from '#libs/contracts';
import type { AppConfig, MasterKeysConfig } from '#libs/config';
import { CONFIG, LOGGER, NATS, openBucket } from '#libs/messaging';
import { STORE, type Repositories } from '#libs/store';
import type { Logger } from '#libs/telemetry';
import { CredentialCryptoError, EnvelopeEncryption, MasterKey, SecretValue, type EncryptedSecret } from './crypto/index.js';
import {
  DelegationError, DelegationService, importDelegationKeys, type CredentialPolicy, type DelegationErrorCode, type RedeemedDelegation,
} from './delegation/index.js';
import { ensureDelegationKeyFile, ensureMasterKeysFile, fileStamp, publicPemOf, readMasterKeysFile } from './keys/key-files.js';
import { parseCredentialInput, readMaterial, type Material } from './material.js';
import { ClientCredentialsTokenSource, TokenSourceError } from './oauth/index.js';
import { CredentialStore, credentialView, type StoredCredential } from './store/credential-store.js';
import { KvKeyring } from './store/kv-keyring.js';
import { KvReplayCache } from './store/kv-replay-cache.js';

/** Optional knobs (tests). */
export const BROKER_OPTIONS = Symbol('BROKER_OPTIONS');
export interface BrokerOptions {
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** Allowed clock difference between broker replicas, in seconds (default 1). */
  clockToleranceSeconds?: number;
  /** Timeout of one OAuth token request (default 4 s: inside the redeem RPC's timeout). */
  tokenTimeoutMs?: number;
}

const MAX_TOKEN_SOURCES = 10_000;

/** How each refusal of the delegation layer is answered over RPC (and which tool error it becomes). */
const REFUSALS: Record<DelegationErrorCode, { code: ErrorCode; reason: CredentialFailure }> = {
  expired: { code: 'permission_denied', reason: 'delegation_expired' },
  replayed: { code: 'permission_denied', reason: 'delegation_replayed' },
  wrong_audience: { code: 'permission_denied', reason: 'delegation_wrong_audience' },
  wrong_tenant: { code: 'permission_denied', reason: 'credential_wrong_tenant' },
  tool_not_allowed: { code: 'permission_denied', reason: 'credential_tool_not_allowed' },
  revoked: { code: 'permission_denied', reason: 'credential_revoked' },
  bad_signature: { code: 'permission_denied', reason: 'delegation_invalid' },
  invalid_token: { code: 'permission_denied', reason: 'delegation_invalid' },
  scope_not_allowed: { code: 'permission_denied', reason: 'credential_scope_not_allowed' },
  invalid_request: { code: 'invalid_argument', reason: 'delegation_invalid' },
};

function refusal(e: DelegationError): AgentmeshError {
  const r = REFUSALS[e.code] ?? REFUSALS.invalid_token;
  return new AgentmeshError(r.code, e.message, { reason: r.reason });
}

function tenantOf(v: unknown): string {
  if (!isTenantId(v)) throw invalid('tenantId is not a valid tenant id', [{ field: 'tenantId', message: 'is invalid' }]);
  return v;
}

function nameOf(v: unknown, field = 'name'): string {
  if (!isResourceName(v)) throw invalid(`${field} is not a valid credential name`, [{ field, message: 'is invalid' }]);
  return v;
}

function toolOf(v: unknown): { name: string; version: string } {
  const t = v as { name?: unknown; version?: unknown } | null;
  if (!t || !isResourceName(t.name) || typeof t.version !== 'string' || !VERSION.test(t.version)) {
    throw invalid('tool must be {name, version}', [{ field: 'tool', message: 'is invalid' }]);
  }
  return { name: t.name, version: t.version };
}

function scopesOf(v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.length > 64 || v.some((s) => typeof s !== 'string' || s.length === 0 || s.length > 256)) {
    throw invalid('scopes must be a list of scope strings', [{ field: 'credential.scopes', message: 'is invalid' }]);
  }
  return v as string[];
}

/** Crypto failures name tenants and key ids only; they become `unavailable` (the secret cannot be read now). */
function cryptoFailure(e: CredentialCryptoError): AgentmeshError {
  return new AgentmeshError('unavailable', `the credential store cannot be used: ${e.message}`, { reason: 'credential_unavailable' });
}

/**
 * The credential broker: stores per-tenant secrets encrypted (envelope encryption: a data key per
 * tenant in the KV keyring, wrapped by a master key), mints short-lived single-use delegations for
 * one tool call, and redeems them for the tool-runner only, answering the header to send. Secret
 * material leaves this service in exactly one place: the answer of a successful redemption.
 */
@Injectable()
export class CredentialBroker implements OnModuleInit {
  private readonly store: CredentialStore;
  private keyring!: KvKeyring;
  private envelope!: EnvelopeEncryption;
  private delegations!: DelegationService;
  private masterKeyIds: string[] = [];
  /** The master key file when keys live in the data folder (embedded), with the stamp it was read at. */
  private keyFile: { path: string; stamp: string } | undefined;
  private readonly tokenSources = new Map<string, { stamp: string; source: ClientCredentialsTokenSource }>();
  private readonly now: () => number;
  private readonly clockToleranceSeconds: number;
  private readonly tokenTimeoutMs: number;

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(STORE) repos: Repositories,
    @Optional() @Inject(BROKER_OPTIONS) opts?: BrokerOptions,
  ) {
    this.now = opts?.now ?? Date.now;
    this.clockToleranceSeconds = opts?.clockToleranceSeconds ?? 1;
    this.tokenTimeoutMs = opts?.tokenTimeoutMs ?? 4000;
    this.store = new CredentialStore(repos);
  }

  async onModuleInit(): Promise<void> {
    // the key ring and the replay cache stay on JetStream KV; the credentials go through libs/store
    const [keyring, replay] = await Promise.all([openBucket(this.nc, BUCKETS.keyring), openBucket(this.nc, BUCKETS.delegationReplay)]);
    this.keyring = new KvKeyring(keyring);
    this.loadMasterKeys();

    const replayCache = new KvReplayCache(replay);
    const retention = await replayCache.retentionMs();
    const longest = (MAX_DELEGATION_TTL_SECONDS + this.clockToleranceSeconds) * 1000;
    if (retention !== 0 && retention < longest) {
      throw new Error(`bucket ${BUCKETS.delegationReplay} forgets redeemed delegations after ${retention} ms, sooner than a delegation can live (${longest} ms)`);
    }

    let pem = this.config.delegationSigningKey?.reveal();
    if (pem === undefined) {
      const generated = ensureDelegationKeyFile(this.config.dataDir);
      if (generated.generated) this.logger.info({ dir: this.config.dataDir }, 'generated the delegation signing key (delegation.key, mode 0600)');
      pem = generated.pem;
    }
    const keys = await importDelegationKeys({ kid: this.config.delegationKeyId, alg: 'Ed25519', privateKeyPem: pem, publicKeyPem: publicPemOf(pem) });
    this.delegations = new DelegationService({
      signingKey: keys.signing,
      verificationKeys: [keys.verification],
      replayCache,
      credentials: { get: (tenantId, name) => this.policy(tenantId, name) },
      now: this.now,
      defaultTtlSeconds: this.config.delegationTtlSeconds,
      maxTtlSeconds: MAX_DELEGATION_TTL_SECONDS,
      clockToleranceSeconds: this.clockToleranceSeconds,
    });

    // data keys wrapped by a master key this broker does not have cannot be read: say so at once
    const status = await this.keyStatus();
    const unknown = Object.entries(status.dataKeys).filter(([id]) => !this.masterKeyIds.includes(id));
    if (unknown.length) {
      this.logger.error({ unknownMasterKeys: Object.fromEntries(unknown), configured: this.masterKeyIds }, 'some tenant data keys are wrapped by master keys that are not configured: their credentials cannot be used');
    }
  }

  // ---- master keys

  /** Reads the master keys (configuration, else the data folder's file, generated on first start). */
  private loadMasterKeys(): void {
    let cfg: MasterKeysConfig;
    if (this.config.masterKeys) {
      cfg = this.config.masterKeys;
      this.keyFile = undefined;
    } else {
      const { file, generated } = ensureMasterKeysFile(this.config.dataDir);
      if (generated) this.logger.info({ file }, 'generated a master key (master.keys, mode 0600)');
      const stamp = fileStamp(file);
      cfg = readMasterKeysFile(file);
      this.keyFile = { path: file, stamp };
    }
    const masterKeys = cfg.keys.map((k) => MasterKey.fromBase64(k.id, k.key.reveal()));
    this.envelope = new EnvelopeEncryption({ masterKeys, activeMasterKeyId: cfg.active, keyring: this.keyring, now: this.now });
    this.masterKeyIds = masterKeys.map((k) => k.id);
  }

  /** The envelope layer, re-reading the key file first if another process (rotation) changed it. */
  private currentEnvelope(): EnvelopeEncryption {
    if (this.keyFile && fileStamp(this.keyFile.path) !== this.keyFile.stamp) {
      const before = this.envelope.activeMasterKeyId;
      try {
        this.loadMasterKeys();
        this.logger.info({ active: this.envelope.activeMasterKeyId, previous: before, keys: this.masterKeyIds }, 'master keys reloaded');
      } catch (err) {
        this.logger.error({ err }, 'the master key file changed but cannot be read; keeping the keys in use');
        this.keyFile = { ...this.keyFile, stamp: fileStamp(this.keyFile.path) };
      }
    }
    return this.envelope;
  }

  async keyStatus(): Promise<KeyringStatus> {
    const env = this.currentEnvelope();
    const dataKeys: Record<string, number> = {};
    for await (const tenantId of this.keyring.tenants()) {
      const entry = await this.keyring.get(tenantId);
      if (entry) dataKeys[entry.value.masterKeyId] = (dataKeys[entry.value.masterKeyId] ?? 0) + 1;
    }
    return { activeMasterKeyId: env.activeMasterKeyId, masterKeyIds: [...this.masterKeyIds], dataKeys };
  }

  /**
   * Re-wraps every data key that is not under the active master key (re-reading the key file when
   * asked). Online: secrets are not re-encrypted, data keys do not change, and every configured key
   * keeps unwrapping what it wrapped, so calls in flight are not disturbed. Idempotent.
   */
  async rotate(req: RpcMap['credentials.rotate']['req']): Promise<RotationReport> {
    if (req?.reload && this.keyFile) this.keyFile = { ...this.keyFile, stamp: 'reload' };
    const env = this.currentEnvelope();
    const active = env.activeMasterKeyId;
    let rewrapped = 0;
    const failed = new Map<string, string>();
    for (const id of this.masterKeyIds) {
      if (id === active) continue;
      const r = await env.rewrap(id, active);
      rewrapped += r.rewrapped;
      for (const f of r.failed) failed.set(f.tenantId, f.code);
    }
    const status = await this.keyStatus();
    for (const [id, n] of Object.entries(status.dataKeys)) {
      if (!this.masterKeyIds.includes(id)) this.logger.error({ masterKeyId: id, dataKeys: n }, 'data keys are wrapped by a master key that is not configured');
    }
    const total = Object.values(status.dataKeys).reduce((a, b) => a + b, 0);
    const report: RotationReport = {
      ...status, rewrapped, unchanged: Math.max(0, total - rewrapped - failed.size),
      failed: [...failed].map(([tenantId, code]) => ({ tenantId, code })),
    };
    this.logger.info({ active, rewrapped, unchanged: report.unchanged, failed: failed.size, dataKeys: status.dataKeys }, 'master key rotation: data keys re-wrapped');
    return report;
  }

  // ---- credentials

  private async policy(tenantId: string, name: string): Promise<CredentialPolicy | undefined> {
    const found = await this.store.get(tenantId, name);
    if (found.state === 'present') return { name, allowedTools: found.record.metadata.allowedTools, scopes: found.record.metadata.scopes };
    if (found.state === 'revoked') return { name, allowedTools: [], scopes: [], revoked: true };
    return undefined;
  }

  async put(req: RpcMap['credentials.put']['req']): Promise<RpcMap['credentials.put']['res']> {
    const tenantId = tenantOf(req?.tenantId);
    const name = nameOf(req?.name);
    const input = parseCredentialInput(req?.credential);
    const env = this.currentEnvelope();
    const at = new Date(this.now()).toISOString();
    let secret: EncryptedSecret;
    try {
      secret = await env.encrypt(tenantId, name, input.material);
    } catch (e) {
      if (e instanceof CredentialCryptoError) throw cryptoFailure(e);
      throw e;
    }
    // a live credential keeps its createdAt (the repository's put); a revoked or new name starts at `at`
    const stored = await this.store.put(tenantId, name, secret, { kind: input.kind, allowedTools: input.allowedTools, scopes: input.scopes }, at);
    this.tokenSources.delete(`${tenantId}.${name}`);
    this.logger.info({ tenant: tenantId, credential: name, kind: input.kind, created: stored.created }, 'credential stored');
    return { credential: credentialView(stored.record), created: stored.created };
  }

  async list(req: RpcMap['credentials.list']['req']): Promise<RpcMap['credentials.list']['res']> {
    const tenantId = tenantOf(req?.tenantId);
    return { credentials: await this.store.list(tenantId) };
  }

  async revoke(req: RpcMap['credentials.revoke']['req']): Promise<RpcMap['credentials.revoke']['res']> {
    const tenantId = tenantOf(req?.tenantId);
    const name = nameOf(req?.name);
    if (!(await this.store.revoke(tenantId, name, new Date(this.now()).toISOString()))) throw notFound(`credential ${name}`);
    this.tokenSources.delete(`${tenantId}.${name}`);
    this.logger.info({ tenant: tenantId, credential: name }, 'credential revoked');
    return { name, revoked: true };
  }

  // ---- delegations

  async mint(req: RpcMap['credentials.mint']['req']): Promise<RpcMap['credentials.mint']['res']> {
    const tenantId = tenantOf(req?.tenantId);
    if (!isRunId(req.runId)) throw invalid('runId is not a run id', [{ field: 'runId', message: 'is invalid' }]);
    if (!Number.isSafeInteger(req.step) || req.step < 0) throw invalid('step must be a step number', [{ field: 'step', message: 'is invalid' }]);
    const tool = toolOf(req.tool);
    const name = nameOf(req.credential?.name, 'credential.name');
    const requestedScopes = scopesOf(req.credential?.scopes);
    const found = await this.store.get(tenantId, name);
    const log = { tenant: tenantId, tool: `${tool.name}@${tool.version}`, credential: name, runId: req.runId, step: req.step };
    if (found.state !== 'present') {
      const reason: CredentialFailure = found.state === 'revoked' ? 'credential_revoked' : 'credential_not_found';
      this.logger.info({ ...log, reason }, 'delegation refused');
      throw found.state === 'revoked'
        ? new AgentmeshError('permission_denied', `credential ${name} is revoked`, { reason })
        : new AgentmeshError('not_found', `credential ${name} not found`, { reason });
    }
    const { metadata } = found.record;
    try {
      const minted = await this.delegations.mint({
        tenantId, runId: req.runId, stepId: String(req.step), tool,
        credential: { name, allowedTools: metadata.allowedTools, scopes: metadata.scopes },
        requestedScopes, ...(req.ttlSeconds !== undefined ? { ttlSeconds: req.ttlSeconds } : {}),
      });
      this.logger.debug({ ...log, scopes: minted.scopes }, 'delegation minted');
      return { delegation: minted.token.reveal(), expiresAt: new Date(minted.expiresAt).toISOString(), scopes: minted.scopes };
    } catch (e) {
      if (!(e instanceof DelegationError)) throw e;
      const err = refusal(e);
      this.logger.info({ ...log, reason: err.extra.reason }, 'delegation refused');
      throw err;
    }
  }

  async redeem(req: RpcMap['credentials.redeem']['req']): Promise<RpcMap['credentials.redeem']['res']> {
    const tenantId = tenantOf(req?.tenantId);
    const tool = toolOf(req.tool);
    const credentialName = nameOf(req.credentialName, 'credentialName');
    if (typeof req.delegation !== 'string' || req.delegation.length === 0) {
      throw new AgentmeshError('permission_denied', 'no delegation was presented', { reason: 'credential_missing' });
    }
    const log = { tenant: tenantId, tool: `${tool.name}@${tool.version}`, credential: credentialName };
    let claims: RedeemedDelegation;
    try {
      claims = await this.delegations.redeem(SecretValue.from(req.delegation), { tenantId, tool });
    } catch (e) {
      if (!(e instanceof DelegationError)) throw e;
      const err = refusal(e);
      this.logger.warn({ ...log, reason: err.extra.reason }, 'delegation redemption refused');
      throw err;
    }
    if (claims.credentialName !== credentialName) {
      this.logger.warn({ ...log, delegated: claims.credentialName, reason: 'credential_mismatch' }, 'delegation redemption refused');
      throw new AgentmeshError('permission_denied', `the delegation is for credential ${claims.credentialName}, not ${credentialName}`, { reason: 'credential_mismatch' });
    }
    const found = await this.store.get(tenantId, credentialName);
    if (found.state !== 'present') {
      throw new AgentmeshError('permission_denied', `credential ${credentialName} was revoked`, { reason: 'credential_revoked' });
    }
    const record = found.record;
    let material: Material;
    try {
      material = readMaterial(await this.currentEnvelope().decrypt(tenantId, credentialName, record.secret), record.metadata.kind);
    } catch (e) {
      if (e instanceof CredentialCryptoError) {
        this.logger.error({ ...log, code: e.code }, 'a stored credential cannot be decrypted');
        throw cryptoFailure(e);
      }
      throw e;
    }
    const inject = await this.injection(record, material, claims.scopes);
    this.logger.debug({ ...log, scopes: claims.scopes, runId: claims.runId, step: claims.stepId }, 'delegation redeemed');
    return { credential: credentialName, kind: record.metadata.kind, scopes: claims.scopes, inject };
  }

  /** The header a tool request carries for the credential. */
  private async injection(record: StoredCredential, m: Material, scopes: string[]): Promise<CredentialInjection> {
    switch (m.kind) {
      case 'api_key':
        return { header: m.header, value: m.secret };
      case 'bearer':
        return { header: 'authorization', value: `Bearer ${m.secret}` };
      case 'oauth2_client_credentials': {
        const source = this.tokenSource(record, m);
        try {
          const token = await source.getToken({ scopes });
          return { header: 'authorization', value: `Bearer ${token.value.reveal()}` };
        } catch (e) {
          if (!(e instanceof TokenSourceError)) throw e;
          this.logger.warn({ tenant: record.tenantId, credential: record.name, code: e.code, status: e.status, oauthError: e.oauthError }, 'oauth token request failed');
          const rejected = e.code === 'token_endpoint_rejected' || e.code === 'invalid_token_response' || e.code === 'invalid_configuration';
          throw new AgentmeshError(rejected ? 'permission_denied' : 'unavailable', `no OAuth access token for credential ${record.name}: ${e.message}`, {
            reason: rejected ? 'oauth_token_rejected' : 'oauth_token_unavailable',
          });
        }
      }
    }
  }

  /** One token source (and its token cache) per credential version; replaced when the credential is. */
  private tokenSource(record: StoredCredential, m: Extract<Material, { kind: 'oauth2_client_credentials' }>): ClientCredentialsTokenSource {
    const key = `${record.tenantId}.${record.name}`;
    const stamp = `${record.updatedAt}|${record.secret.nonce}`;
    const hit = this.tokenSources.get(key);
    if (hit && hit.stamp === stamp) {
      this.tokenSources.delete(key);
      this.tokenSources.set(key, hit);
      return hit.source;
    }
    const source = new ClientCredentialsTokenSource({
      tokenUrl: m.tokenUrl,
      clientId: m.clientId,
      clientSecret: SecretValue.from(m.clientSecret),
      timeoutMs: this.tokenTimeoutMs,
      now: this.now,
      logger: this.logger.child({ tenant: record.tenantId, credential: record.name }),
    });
    if (this.tokenSources.size >= MAX_TOKEN_SOURCES) this.tokenSources.delete(this.tokenSources.keys().next().value as string);
    this.tokenSources.set(key, { stamp, source });
    return source;
  }
}

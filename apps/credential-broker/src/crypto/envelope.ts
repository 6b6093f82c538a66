import { createSecretKey, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES, encodeAad, fromBase64url, open, seal } from './aead.js';
import { CredentialCryptoError } from './errors.js';
import type { Keyring, WrappedDataKey } from './keyring.js';
import type { MasterKey } from './master-key.js';
import { SecretValue } from './secret-value.js';

/** A secret encrypted under its tenant's data key. Safe to store and to log (it is ciphertext). */
export interface EncryptedSecret {
  v: 1;
  alg: 'A256GCM';
  /** The tenant data key it was encrypted with (diagnostics: a mismatch means a replaced keyring). */
  dataKeyId: string;
  /** base64url, 12 bytes. */
  nonce: string;
  /** base64url. */
  ciphertext: string;
  /** base64url, 16 bytes. */
  tag: string;
}

export interface EnvelopeEncryptionOptions {
  /** Every master key that may unwrap a data key; during a rotation, old and new. */
  masterKeys: readonly MasterKey[];
  /** The master key that wraps newly created data keys. */
  activeMasterKeyId: string;
  keyring: Keyring;
  /** Milliseconds since the epoch; only used for the keyring's createdAt / rewrappedAt. */
  now?: () => number;
}

export interface RewrapReport {
  /** Data keys moved from the old master key to the new one. */
  rewrapped: number;
  /** Data keys already under another master key, left alone. */
  unchanged: number;
  /** Entries that could not be re-wrapped; the old master key must not be retired while any remain. */
  failed: Array<{ tenantId: string; code: string }>;
}

const DATA_KEY_AAD = 'agentmesh/data-key/v1';
const SECRET_AAD = 'agentmesh/secret/v1';
const MAX_CAS_ATTEMPTS = 5;

interface DataKey {
  dataKeyId: string;
  key: KeyObject;
}

/**
 * Envelope encryption of tenant secrets. Each tenant gets a random 256-bit data key, stored in the
 * keyring wrapped by a configured master key; secrets are AES-256-GCM encrypted under the data key
 * with AAD binding (tenant id, credential name), so a ciphertext copied to another tenant or name
 * does not decrypt. Rotating the master key re-wraps data keys only; secret ciphertexts stay as they
 * are, and any configured master key unwraps the data keys it wrapped, so rotation needs no downtime.
 *
 * Random nonces under one data key stay well below the 2^32 messages GCM allows per key for any
 * realistic number of credential writes per tenant.
 */
export class EnvelopeEncryption {
  readonly #masterKeys = new Map<string, MasterKey>();
  readonly #activeMasterKeyId: string;
  readonly #keyring: Keyring;
  readonly #now: () => number;
  /** Unwrapped data keys. A data key never changes once created (re-wrapping keeps it), so caching is safe. */
  readonly #dataKeys = new Map<string, DataKey>();
  readonly #loading = new Map<string, Promise<DataKey>>();

  constructor(options: EnvelopeEncryptionOptions) {
    for (const masterKey of options.masterKeys) {
      if (this.#masterKeys.has(masterKey.id)) {
        throw new CredentialCryptoError('invalid_master_key', `master key id ${masterKey.id} is configured twice`);
      }
      this.#masterKeys.set(masterKey.id, masterKey);
    }
    if (!this.#masterKeys.has(options.activeMasterKeyId)) {
      throw new CredentialCryptoError(
        'unknown_master_key',
        `active master key ${options.activeMasterKeyId} is not among the configured master keys`,
      );
    }
    this.#activeMasterKeyId = options.activeMasterKeyId;
    this.#keyring = options.keyring;
    this.#now = options.now ?? Date.now;
  }

  get activeMasterKeyId(): string {
    return this.#activeMasterKeyId;
  }

  /** Encrypts a secret for (tenant, credential name), creating the tenant's data key on first use. */
  async encrypt(tenantId: string, credentialName: string, value: SecretValue): Promise<EncryptedSecret> {
    requireName('tenant id', tenantId);
    requireName('credential name', credentialName);
    if (!SecretValue.isSecretValue(value)) {
      throw new CredentialCryptoError('invalid_argument', 'encrypt expects a SecretValue');
    }
    const dataKey = await this.#dataKey(tenantId, true);
    const plaintext = value.revealBytes();
    try {
      const sealed = seal(dataKey.key, plaintext, secretAad(tenantId, credentialName));
      return {
        v: 1,
        alg: 'A256GCM',
        dataKeyId: dataKey.dataKeyId,
        nonce: sealed.nonce.toString('base64url'),
        ciphertext: sealed.ciphertext.toString('base64url'),
        tag: sealed.tag.toString('base64url'),
      };
    } finally {
      plaintext.fill(0);
    }
  }

  /** Decrypts a secret stored for (tenant, credential name); any alteration fails with `decrypt_failed`. */
  async decrypt(tenantId: string, credentialName: string, encrypted: EncryptedSecret): Promise<SecretValue> {
    requireName('tenant id', tenantId);
    requireName('credential name', credentialName);
    const sealed = parseEncryptedSecret(encrypted);
    const dataKey = await this.#dataKey(tenantId, false);
    if (encrypted.dataKeyId !== dataKey.dataKeyId) {
      throw new CredentialCryptoError(
        'decrypt_failed',
        `secret ${credentialName} of tenant ${tenantId} was not encrypted under this tenant's data key`,
      );
    }
    let plaintext: Buffer;
    try {
      plaintext = open(dataKey.key, sealed, secretAad(tenantId, credentialName));
    } catch (cause) {
      throw new CredentialCryptoError(
        'decrypt_failed',
        `secret ${credentialName} of tenant ${tenantId} failed authentication (tampered, or stored under another tenant or name)`,
        { cause },
      );
    }
    try {
      return SecretValue.fromBytes(plaintext);
    } finally {
      plaintext.fill(0);
    }
  }

  /** Creates the tenant's data key if it has none (idempotent; safe across replicas). */
  async ensureDataKey(tenantId: string): Promise<void> {
    requireName('tenant id', tenantId);
    await this.#dataKey(tenantId, true);
  }

  /**
   * Re-wraps every data key wrapped by `oldMasterKeyId` under `newMasterKeyId` (default: the active
   * key). Secret ciphertexts are not touched. Both keys must be configured. Idempotent and resumable:
   * run it again after a partial failure. Once `failed` is empty, the old key can be removed from
   * configuration.
   */
  async rewrap(oldMasterKeyId: string, newMasterKeyId: string = this.#activeMasterKeyId): Promise<RewrapReport> {
    const oldKey = this.#masterKey(oldMasterKeyId);
    const newKey = this.#masterKey(newMasterKeyId);
    if (oldKey.id === newKey.id) {
      throw new CredentialCryptoError('invalid_argument', 'rewrap needs two different master keys');
    }
    const report: RewrapReport = { rewrapped: 0, unchanged: 0, failed: [] };
    for await (const tenantId of this.#keyring.tenants()) {
      try {
        const outcome = await this.#rewrapOne(tenantId, oldKey, newKey);
        report[outcome] += 1;
      } catch (error) {
        const code = error instanceof CredentialCryptoError ? error.code : 'keyring_error';
        report.failed.push({ tenantId, code });
      }
    }
    return report;
  }

  async #rewrapOne(tenantId: string, oldKey: MasterKey, newKey: MasterKey): Promise<'rewrapped' | 'unchanged'> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await this.#keyring.get(tenantId);
      if (!entry || entry.value.masterKeyId !== oldKey.id) return 'unchanged';
      const raw = unwrapRaw(entry.value, tenantId, oldKey);
      try {
        const rewrapped: WrappedDataKey = {
          ...wrapRaw(raw, tenantId, entry.value.dataKeyId, newKey),
          createdAt: entry.value.createdAt,
          rewrappedAt: new Date(this.#now()).toISOString(),
        };
        if (await this.#keyring.update(tenantId, rewrapped, entry.revision)) return 'rewrapped';
      } finally {
        raw.fill(0);
      }
    }
    throw new CredentialCryptoError('keyring_conflict', `data key of tenant ${tenantId} kept changing during rewrap`);
  }

  #masterKey(id: string): MasterKey {
    const key = this.#masterKeys.get(id);
    if (!key) throw new CredentialCryptoError('unknown_master_key', `master key ${id} is not configured`);
    return key;
  }

  async #dataKey(tenantId: string, create: boolean): Promise<DataKey> {
    const cached = this.#dataKeys.get(tenantId);
    if (cached) return cached;
    const inflight = this.#loading.get(tenantId);
    if (inflight) {
      const loaded = await inflight.catch(() => undefined);
      if (loaded) return loaded;
    }
    const loading = this.#loadDataKey(tenantId, create);
    this.#loading.set(tenantId, loading);
    try {
      const dataKey = await loading;
      this.#dataKeys.set(tenantId, dataKey);
      return dataKey;
    } finally {
      if (this.#loading.get(tenantId) === loading) this.#loading.delete(tenantId);
    }
  }

  async #loadDataKey(tenantId: string, create: boolean): Promise<DataKey> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await this.#keyring.get(tenantId);
      if (entry) {
        if (entry.value.tenantId !== tenantId) {
          throw new CredentialCryptoError('unwrap_failed', `keyring entry of tenant ${tenantId} belongs to another tenant`);
        }
        const raw = unwrapRaw(entry.value, tenantId, this.#masterKey(entry.value.masterKeyId));
        try {
          return { dataKeyId: entry.value.dataKeyId, key: createSecretKey(raw) };
        } finally {
          raw.fill(0);
        }
      }
      if (!create) {
        throw new CredentialCryptoError('data_key_missing', `tenant ${tenantId} has no data key`);
      }
      const raw = randomBytes(KEY_BYTES);
      try {
        const dataKeyId = `dk_${randomUUID()}`;
        const wrapped: WrappedDataKey = {
          ...wrapRaw(raw, tenantId, dataKeyId, this.#masterKey(this.#activeMasterKeyId)),
          createdAt: new Date(this.#now()).toISOString(),
        };
        if (await this.#keyring.create(tenantId, wrapped)) return { dataKeyId, key: createSecretKey(raw) };
        // Another replica created it first: loop and use theirs.
      } finally {
        raw.fill(0);
      }
    }
    throw new CredentialCryptoError('keyring_conflict', `could not create or read the data key of tenant ${tenantId}`);
  }
}

function requireName(what: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new CredentialCryptoError('invalid_argument', `${what} must be a non-empty string`);
  }
}

function secretAad(tenantId: string, credentialName: string): Buffer {
  return encodeAad([SECRET_AAD, tenantId, credentialName]);
}

function dataKeyAad(tenantId: string, dataKeyId: string, masterKeyId: string): Buffer {
  return encodeAad([DATA_KEY_AAD, tenantId, dataKeyId, masterKeyId]);
}

function wrapRaw(
  raw: Buffer,
  tenantId: string,
  dataKeyId: string,
  masterKey: MasterKey,
): Omit<WrappedDataKey, 'createdAt' | 'rewrappedAt'> {
  const sealed = seal(masterKey.keyObject(), raw, dataKeyAad(tenantId, dataKeyId, masterKey.id));
  return {
    v: 1,
    tenantId,
    dataKeyId,
    masterKeyId: masterKey.id,
    nonce: sealed.nonce.toString('base64url'),
    wrappedKey: sealed.ciphertext.toString('base64url'),
    tag: sealed.tag.toString('base64url'),
  };
}

/** The raw data key bytes; the caller zeroes them. */
function unwrapRaw(wrapped: WrappedDataKey, tenantId: string, masterKey: MasterKey): Buffer {
  const nonce = fromBase64url(wrapped.nonce);
  const ciphertext = fromBase64url(wrapped.wrappedKey);
  const tag = fromBase64url(wrapped.tag);
  if (
    wrapped.v !== 1 ||
    typeof wrapped.dataKeyId !== 'string' ||
    nonce?.length !== NONCE_BYTES ||
    ciphertext?.length !== KEY_BYTES ||
    tag?.length !== TAG_BYTES
  ) {
    throw new CredentialCryptoError('invalid_ciphertext', `keyring entry of tenant ${tenantId} is malformed`);
  }
  try {
    return open(masterKey.keyObject(), { nonce, ciphertext, tag }, dataKeyAad(tenantId, wrapped.dataKeyId, masterKey.id));
  } catch (cause) {
    throw new CredentialCryptoError(
      'unwrap_failed',
      `data key of tenant ${tenantId} failed authentication under master key ${masterKey.id}`,
      { cause },
    );
  }
}

function parseEncryptedSecret(encrypted: EncryptedSecret): { nonce: Buffer; ciphertext: Buffer; tag: Buffer } {
  const candidate: Partial<EncryptedSecret> | null =
    typeof encrypted === 'object' && encrypted !== null ? encrypted : null;
  const nonce = fromBase64url(candidate?.nonce);
  const ciphertext = fromBase64url(candidate?.ciphertext);
  const tag = fromBase64url(candidate?.tag);
  if (
    candidate?.v !== 1 ||
    candidate.alg !== 'A256GCM' ||
    typeof candidate.dataKeyId !== 'string' ||
    nonce?.length !== NONCE_BYTES ||
    !ciphertext ||
    tag?.length !== TAG_BYTES
  ) {
    throw new CredentialCryptoError('invalid_ciphertext', 'encrypted secret is malformed');
  }
  return { nonce, ciphertext, tag };
}

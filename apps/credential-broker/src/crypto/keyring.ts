/**
 * A tenant's data key as stored: encrypted (AES-256-GCM) under the master key `masterKeyId`, with
 * AAD binding it to the tenant and the data key id. Contains no plaintext key material.
 */
export interface WrappedDataKey {
  v: 1;
  tenantId: string;
  /** Random id of the data key; unchanged by re-wrapping. Encrypted secrets record it. */
  dataKeyId: string;
  masterKeyId: string;
  /** base64url, 12 bytes. */
  nonce: string;
  /** base64url, the encrypted 32-byte key followed by nothing else. */
  wrappedKey: string;
  /** base64url, 16 bytes. */
  tag: string;
  createdAt: string;
  rewrappedAt?: string;
}

export interface KeyringEntry {
  value: WrappedDataKey;
  /** Opaque, increasing revision for compare-and-set (a JetStream KV revision maps directly). */
  revision: number;
}

/**
 * Where wrapped data keys live, one entry per tenant. Implementations must make `create` and
 * `update` atomic: two broker replicas creating a tenant's first key, or a rotation racing a
 * creation, must not lose a key (a lost data key makes that tenant's secrets unreadable).
 */
export interface Keyring {
  get(tenantId: string): Promise<KeyringEntry | undefined>;
  /** Create-if-absent: false (and no change) when the tenant already has an entry. */
  create(tenantId: string, value: WrappedDataKey): Promise<boolean>;
  /** Compare-and-set: false (and no change) when the entry's revision is not `expectedRevision`. */
  update(tenantId: string, value: WrappedDataKey, expectedRevision: number): Promise<boolean>;
  /** Every tenant id with an entry (order unspecified). */
  tenants(): AsyncIterable<string>;
}

/** In-process keyring for tests and single-process development. */
export class InMemoryKeyring implements Keyring {
  readonly #entries = new Map<string, KeyringEntry>();
  #revision = 0;

  async get(tenantId: string): Promise<KeyringEntry | undefined> {
    const entry = this.#entries.get(tenantId);
    return entry ? { value: { ...entry.value }, revision: entry.revision } : undefined;
  }

  async create(tenantId: string, value: WrappedDataKey): Promise<boolean> {
    if (this.#entries.has(tenantId)) return false;
    this.#entries.set(tenantId, { value: { ...value }, revision: ++this.#revision });
    return true;
  }

  async update(tenantId: string, value: WrappedDataKey, expectedRevision: number): Promise<boolean> {
    const current = this.#entries.get(tenantId);
    if (!current || current.revision !== expectedRevision) return false;
    this.#entries.set(tenantId, { value: { ...value }, revision: ++this.#revision });
    return true;
  }

  async *tenants(): AsyncIterable<string> {
    for (const tenantId of [...this.#entries.keys()]) yield tenantId;
  }

  /** Test helper: overwrite an entry as if storage had been tampered with. */
  replaceUnchecked(tenantId: string, value: WrappedDataKey): void {
    this.#entries.set(tenantId, { value: { ...value }, revision: ++this.#revision });
  }
}

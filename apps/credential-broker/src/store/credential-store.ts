import type { KV } from '@nats-io/kv';
import type { CredentialKind, CredentialView } from '#libs/contracts';
import { decodeJson, encodeJson } from '#libs/messaging';
import type { EncryptedSecret } from '../crypto/envelope.js';
import { isWrongLastSequence } from './kv-keyring.js';

/**
 * A stored credential: metadata in the clear, the secret material (and every connection detail:
 * header name, token URL, client id) as one ciphertext under the tenant's data key. The shape is
 * the one of libs/store's CredentialRecord, so the broker can move to that repository unchanged.
 */
export interface StoredCredential {
  tenantId: string;
  name: string;
  secret: EncryptedSecret;
  metadata: { kind: CredentialKind; allowedTools: string[]; scopes: string[] };
  createdAt: string;
  updatedAt: string;
}

export type CredentialLookup =
  | { state: 'present'; record: StoredCredential; revision: number }
  /** It existed and was revoked (its delete marker is the key's last entry). */
  | { state: 'revoked' }
  | { state: 'absent' };

const MAX_CAS_ATTEMPTS = 8;

export function credentialView(r: StoredCredential): CredentialView {
  return {
    name: r.name,
    kind: r.metadata.kind,
    allowedTools: [...r.metadata.allowedTools],
    scopes: [...r.metadata.scopes],
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

/**
 * Credentials in a JetStream KV bucket under `<tenant>.<name>` (both grammars are KV-token safe).
 * Every method takes the tenant first; revoking deletes the key, leaving a delete marker, so a
 * revoked credential is told apart from one that never existed.
 */
export class KvCredentialStore {
  constructor(private readonly kv: KV) {}

  private key(tenantId: string, name: string): string {
    return `${tenantId}.${name}`;
  }

  async get(tenantId: string, name: string): Promise<CredentialLookup> {
    const e = await this.kv.get(this.key(tenantId, name));
    if (!e) return { state: 'absent' };
    if (e.operation !== 'PUT' || e.length === 0) return { state: 'revoked' };
    return { state: 'present', record: decodeJson<StoredCredential>(e.value), revision: e.revision };
  }

  /**
   * Creates or replaces. `build` receives the current record (undefined when there is none) and
   * returns the one to store; on a concurrent write it is called again with the new current one.
   */
  async put(tenantId: string, name: string, build: (current: StoredCredential | undefined) => Promise<StoredCredential>): Promise<{ record: StoredCredential; created: boolean }> {
    const key = this.key(tenantId, name);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const current = await this.get(tenantId, name);
      const record = await build(current.state === 'present' ? current.record : undefined);
      try {
        if (current.state === 'present') await this.kv.update(key, encodeJson(record), current.revision);
        else await this.kv.create(key, encodeJson(record));
        return { record, created: current.state !== 'present' };
      } catch (e) {
        if (!isWrongLastSequence(e)) throw e;
      }
    }
    throw new Error(`credential ${name} of tenant ${tenantId} kept changing; try again`);
  }

  /** True when there was a credential to revoke. */
  async revoke(tenantId: string, name: string): Promise<boolean> {
    const current = await this.get(tenantId, name);
    if (current.state !== 'present') return false;
    await this.kv.delete(this.key(tenantId, name));
    return true;
  }

  /** The tenant's live credentials, by name. */
  async list(tenantId: string): Promise<StoredCredential[]> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys(`${tenantId}.*`)) keys.push(k);
    const out: StoredCredential[] = [];
    for (const k of keys) {
      const e = await this.kv.get(k);
      if (e && e.operation === 'PUT' && e.length > 0) out.push(decodeJson<StoredCredential>(e.value));
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }
}

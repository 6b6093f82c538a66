import { CREDENTIAL_KINDS, unavailable, type CredentialKind, type CredentialView } from '#libs/contracts';
import type { CredentialRecord, Repositories } from '#libs/store';
import type { EncryptedSecret } from '../crypto/envelope.js';

/**
 * A stored credential as the broker uses it: metadata in the clear, the secret material (and every
 * connection detail: header name, token URL, client id) as one ciphertext under the tenant's data
 * key. It is libs/store's CredentialRecord with the broker's metadata types.
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
  | { state: 'present'; record: StoredCredential }
  /** It existed and was revoked (KV: its delete marker is the key's last entry; MongoDB: its tombstone). */
  | { state: 'revoked' }
  | { state: 'absent' };

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

function metadataOf(r: Omit<CredentialRecord, 'secret'>): StoredCredential['metadata'] {
  const kind = r.metadata.kind as CredentialKind;
  // a record the broker did not write: refuse to use it rather than guess what it holds
  if (!CREDENTIAL_KINDS.includes(kind)) throw unavailable(`credential ${r.name} has an unknown kind`);
  return { kind, allowedTools: [...(r.metadata.allowedTools ?? [])], scopes: [...(r.metadata.scopes ?? [])] };
}

function storedOf(r: CredentialRecord): StoredCredential {
  return { tenantId: r.tenantId, name: r.name, secret: r.secret, metadata: metadataOf(r), createdAt: r.createdAt, updatedAt: r.updatedAt };
}

/**
 * The broker's credentials through libs/store (`forTenant(t).credentials`): JetStream KV
 * `am_credentials` `<tenant>.<name>` (the layout the broker always wrote) or the MongoDB
 * `credentials` collection, as MONGODB_URI decides. Only the envelope and metadata are stored.
 */
export class CredentialStore {
  constructor(private readonly repos: Repositories) {}

  async get(tenantId: string, name: string): Promise<CredentialLookup> {
    const found = await this.repos.forTenant(tenantId).credentials.lookup(name);
    return found.state === 'present' ? { state: 'present', record: storedOf(found.record) } : found;
  }

  /** Creates or replaces (a live credential keeps its createdAt); `created` when there was no live one. */
  async put(tenantId: string, name: string, secret: EncryptedSecret, metadata: StoredCredential['metadata'], at: string): Promise<{ record: StoredCredential; created: boolean }> {
    const { record, created } = await this.repos.forTenant(tenantId).credentials.put(name, secret, metadata, at);
    return { record: storedOf(record), created };
  }

  /** True when there was a live credential to revoke. */
  async revoke(tenantId: string, name: string, at: string): Promise<boolean> {
    return this.repos.forTenant(tenantId).credentials.revoke(name, at);
  }

  /** The tenant's live credentials, by name (metadata only). */
  async list(tenantId: string): Promise<CredentialView[]> {
    return (await this.repos.forTenant(tenantId).credentials.list())
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((r) => ({ name: r.name, ...metadataOf(r), createdAt: r.createdAt, updatedAt: r.updatedAt }));
  }
}

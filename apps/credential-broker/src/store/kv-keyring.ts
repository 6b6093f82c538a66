import type { KV } from '@nats-io/kv';
import { decodeJson, encodeJson } from '#libs/messaging';
import type { Keyring, KeyringEntry, WrappedDataKey } from '../crypto/keyring.js';

/** JetStream's "wrong last sequence" (10071): a create or compare-and-set lost the race. */
export function isWrongLastSequence(e: unknown): boolean {
  const err = e as { code?: unknown; api_error?: { err_code?: unknown }; message?: unknown } | null;
  return err?.code === 10071 || err?.api_error?.err_code === 10071 || /wrong last sequence|key exists/i.test(String(err?.message ?? ''));
}

/**
 * The tenants' wrapped data keys in a JetStream KV bucket, key `<tenant>`. `create` is
 * create-if-absent and `update` compare-and-set on the KV revision (both through JetStream's
 * expected-last-subject-sequence), so two broker replicas creating a tenant's first data key, or a
 * master-key rotation racing a creation, cannot lose a key.
 */
export class KvKeyring implements Keyring {
  constructor(private readonly kv: KV) {}

  async get(tenantId: string): Promise<KeyringEntry | undefined> {
    const e = await this.kv.get(tenantId);
    if (!e || e.operation !== 'PUT' || e.length === 0) return undefined;
    return { value: decodeJson<WrappedDataKey>(e.value), revision: e.revision };
  }

  async create(tenantId: string, value: WrappedDataKey): Promise<boolean> {
    try {
      await this.kv.create(tenantId, encodeJson(value));
      return true;
    } catch (e) {
      if (isWrongLastSequence(e)) return false;
      throw e;
    }
  }

  async update(tenantId: string, value: WrappedDataKey, expectedRevision: number): Promise<boolean> {
    try {
      await this.kv.update(tenantId, encodeJson(value), expectedRevision);
      return true;
    } catch (e) {
      if (isWrongLastSequence(e)) return false;
      throw e;
    }
  }

  async *tenants(): AsyncIterable<string> {
    for await (const key of await this.kv.keys()) yield key;
  }
}

import type { KV } from '@nats-io/kv';
import { encodeJson } from '#libs/messaging';
import { DelegationError } from '../delegation/errors.js';
import type { ReplayCache } from '../delegation/replay-cache.js';
import { isWrongLastSequence } from './kv-keyring.js';

const JTI = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Redeemed delegation ids in a JetStream KV bucket, key `<jti>`, written create-if-absent: of two
 * redemptions of one delegation, on any broker replicas, exactly one creates the key. The bucket's
 * max_age (longer than any delegation lives, checked by the broker at start) forgets an id only
 * once its delegation has expired anyway.
 */
export class KvReplayCache implements ReplayCache {
  constructor(private readonly kv: KV) {}

  async consume(jti: string, expiresAtMs: number): Promise<boolean> {
    if (!JTI.test(jti)) throw new DelegationError('invalid_token', 'delegation id is malformed');
    try {
      await this.kv.create(jti, encodeJson({ until: new Date(expiresAtMs).toISOString() }));
      return true;
    } catch (e) {
      if (isWrongLastSequence(e)) return false;
      throw e;
    }
  }

  /** The bucket's max_age in ms (0: entries never expire). */
  async retentionMs(): Promise<number> {
    return (await this.kv.status()).ttl;
  }
}

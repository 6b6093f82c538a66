import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { KEY_BYTES } from './aead.js';
import { CredentialCryptoError } from './errors.js';

/** Key ids are stored next to every wrapped data key; keep them short and KV-key safe. */
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * A 256-bit key-encryption key from configuration, identified by an id. The key bytes are copied
 * into a KeyObject (which never prints its material) and the caller's buffer is left to them.
 */
export class MasterKey {
  readonly id: string;
  readonly #key: KeyObject;

  private constructor(id: string, key: KeyObject) {
    this.id = id;
    this.#key = key;
    Object.freeze(this);
  }

  static fromBytes(id: string, bytes: Uint8Array): MasterKey {
    if (typeof id !== 'string' || !KEY_ID.test(id)) {
      throw new CredentialCryptoError('invalid_master_key', 'master key id must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}');
    }
    if (bytes.byteLength !== KEY_BYTES) {
      throw new CredentialCryptoError('invalid_master_key', `master key ${id} must be ${KEY_BYTES} bytes`);
    }
    return new MasterKey(id, createSecretKey(Buffer.from(bytes)));
  }

  /** Accepts standard or URL-safe base64 of exactly 32 bytes. */
  static fromBase64(id: string, encoded: string): MasterKey {
    if (typeof encoded !== 'string' || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded.trim())) {
      throw new CredentialCryptoError('invalid_master_key', `master key ${String(id)} is not base64`);
    }
    const bytes = Buffer.from(encoded.trim(), 'base64');
    try {
      return MasterKey.fromBytes(id, bytes);
    } finally {
      bytes.fill(0);
    }
  }

  /** A fresh random key (tests, first start of a development setup). */
  static generate(id: string): MasterKey {
    const bytes = randomBytes(KEY_BYTES);
    try {
      return MasterKey.fromBytes(id, bytes);
    } finally {
      bytes.fill(0);
    }
  }

  /** @internal for the envelope layer. */
  keyObject(): KeyObject {
    return this.#key;
  }

  toJSON(): { id: string } {
    return { id: this.id };
  }

  toString(): string {
    return `MasterKey(${this.id})`;
  }

  [inspect.custom](): string {
    return `MasterKey { id: '${this.id}' }`;
  }
}

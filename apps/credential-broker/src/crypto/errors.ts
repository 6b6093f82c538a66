/**
 * Failures of the envelope encryption layer. Messages name tenants, credential names and key ids
 * (never key bytes or plaintext), so they are safe to log and to return in error bodies.
 */
export type CryptoErrorCode =
  /** A master key is malformed (wrong length, bad id) or configured twice. */
  | 'invalid_master_key'
  /** A wrapped data key names a master key id that is not configured (retired or never known). */
  | 'unknown_master_key'
  /** A wrapped data key failed authentication under its master key (tampered or wrong key). */
  | 'unwrap_failed'
  /** A secret ciphertext failed authentication: tampered, or moved to another tenant or name. */
  | 'decrypt_failed'
  /** An encrypted secret or wrapped data key does not have the expected shape. */
  | 'invalid_ciphertext'
  /** The tenant has no data key yet, so nothing of theirs can have been encrypted. */
  | 'data_key_missing'
  /** Concurrent writers kept changing a keyring entry; the operation gave up. */
  | 'keyring_conflict'
  /** A caller passed an empty tenant id, credential name or an unusable argument. */
  | 'invalid_argument';

export class CredentialCryptoError extends Error {
  override readonly name = 'CredentialCryptoError';
  readonly code: CryptoErrorCode;

  constructor(code: CryptoErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

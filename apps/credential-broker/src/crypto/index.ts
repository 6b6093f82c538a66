export { SecretValue, REDACTED } from './secret-value.js';
export { CredentialCryptoError, type CryptoErrorCode } from './errors.js';
export { MasterKey } from './master-key.js';
export { InMemoryKeyring, type Keyring, type KeyringEntry, type WrappedDataKey } from './keyring.js';
export {
  EnvelopeEncryption,
  type EncryptedSecret,
  type EnvelopeEncryptionOptions,
  type RewrapReport,
} from './envelope.js';

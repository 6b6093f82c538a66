import { generateKeyPair, importPKCS8, importSPKI, type CryptoKey, type KeyObject } from 'jose';

/** Asymmetric JWS algorithms accepted for delegations (Ed25519 preferred; EdDSA is its older name). */
export type DelegationAlgorithm = 'Ed25519' | 'EdDSA' | 'ES256';

export interface DelegationSigningKey {
  kid: string;
  alg: DelegationAlgorithm;
  privateKey: CryptoKey | KeyObject;
}

export interface DelegationVerificationKey {
  kid: string;
  alg: DelegationAlgorithm;
  publicKey: CryptoKey | KeyObject;
}

export interface DelegationKeyPair {
  signing: DelegationSigningKey;
  verification: DelegationVerificationKey;
}

/** A fresh key pair (tests, development). Every broker replica must share the same keys in production. */
export async function generateDelegationKeys(kid: string, alg: DelegationAlgorithm = 'Ed25519'): Promise<DelegationKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { signing: { kid, alg, privateKey }, verification: { kid, alg, publicKey } };
}

/** Imports a key pair from PEM (PKCS#8 private key, SPKI public key), as read from configuration. */
export async function importDelegationKeys(options: {
  kid: string;
  alg: DelegationAlgorithm;
  privateKeyPem: string;
  publicKeyPem: string;
}): Promise<DelegationKeyPair> {
  const { kid, alg } = options;
  const privateKey = await importPKCS8(options.privateKeyPem, alg);
  const publicKey = await importSPKI(options.publicKeyPem, alg);
  return { signing: { kid, alg, privateKey }, verification: { kid, alg, publicKey } };
}

import { AgentmeshError, credentialBodyProblems, DEFAULT_API_KEY_HEADER, invalid, type CredentialInput, type CredentialKind } from '#libs/contracts';
import { SecretValue } from './crypto/secret-value.js';
import { ClientCredentialsTokenSource, TokenSourceError } from './oauth/index.js';

/**
 * What is encrypted for a credential: the secret material together with the details of how to use
 * it, as one JSON document. Only ever held as a SecretValue outside this module.
 */
export type Material =
  | { v: 1; kind: 'api_key'; secret: string; header: string }
  | { v: 1; kind: 'bearer'; secret: string }
  | { v: 1; kind: 'oauth2_client_credentials'; clientId: string; clientSecret: string; tokenUrl: string };

/** Headers a credential may never be sent in: they belong to the transport or the platform. */
const RESERVED_HEADERS = new Set([
  'host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer',
  'expect', 'accept', 'accept-encoding', 'idempotency-key', 'traceparent', 'tracestate', 'cookie', 'proxy-authorization',
]);

/**
 * Validates a credential body (the gateway has already; services re-validate what they receive)
 * and turns it into its metadata and its material. Errors name fields, never values.
 */
export function parseCredentialInput(body: unknown): {
  kind: CredentialKind; allowedTools: string[]; scopes: string[]; material: SecretValue;
} {
  const problems = credentialBodyProblems(body);
  if (problems.length) throw invalid(`credential is invalid: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems);
  const input = body as CredentialInput;
  let material: Material;
  switch (input.kind) {
    case 'api_key': {
      const header = input.header ?? DEFAULT_API_KEY_HEADER;
      if (RESERVED_HEADERS.has(header.toLowerCase())) {
        throw invalid(`header ${header} is reserved; choose another header name`, [{ field: '/header', message: 'is a reserved header' }]);
      }
      material = { v: 1, kind: 'api_key', secret: input.secret!, header };
      break;
    }
    case 'bearer':
      material = { v: 1, kind: 'bearer', secret: input.secret! };
      break;
    case 'oauth2_client_credentials': {
      try {
        // checks the token URL (https, or plain http to loopback only) and the client id
        void new ClientCredentialsTokenSource({ tokenUrl: input.tokenUrl!, clientId: input.clientId!, clientSecret: SecretValue.from(input.clientSecret!) });
      } catch (e) {
        if (e instanceof TokenSourceError) {
          const field = /clientId/.test(e.message) ? '/clientId' : '/tokenUrl';
          throw invalid(`credential is invalid: ${e.message}`, [{ field, message: e.message }]);
        }
        throw e;
      }
      material = { v: 1, kind: 'oauth2_client_credentials', clientId: input.clientId!, clientSecret: input.clientSecret!, tokenUrl: input.tokenUrl! };
      break;
    }
    default:
      throw invalid('kind is not a credential kind', [{ field: '/kind', message: 'unknown kind' }]);
  }
  return {
    kind: input.kind,
    allowedTools: [...input.allowedTools],
    scopes: [...(input.scopes ?? [])],
    material: SecretValue.from(JSON.stringify(material)),
  };
}

/** The decrypted material document. */
export function readMaterial(value: SecretValue, kind: CredentialKind): Material {
  let m: Partial<Material> | null = null;
  try {
    m = JSON.parse(value.reveal()) as Partial<Material>;
  } catch {
    m = null;
  }
  if (!m || m.v !== 1 || m.kind !== kind) {
    throw new AgentmeshError('unavailable', 'the stored credential cannot be read', { reason: 'credential_unavailable' });
  }
  return m as Material;
}

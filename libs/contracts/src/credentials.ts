import type { FieldProblem } from './errors.js';
import { SchemaValidator } from './validation.js';

/**
 * Credentials: per-tenant secrets held (encrypted) by the credential-broker, and the delegations
 * through which one tool call may use one of them. Secret material goes in through `credentials.put`
 * and comes out only to the tool-runner, through `credentials.redeem`, at the moment of the call.
 */

export type CredentialKind = 'api_key' | 'bearer' | 'oauth2_client_credentials';
export const CREDENTIAL_KINDS: readonly CredentialKind[] = ['api_key', 'bearer', 'oauth2_client_credentials'];

/**
 * max_age of BUCKETS.delegationReplay: how long a redeemed delegation id is remembered. Longer than
 * the longest delegation lifetime (AGENTMESH_DELEGATION_TTL, at most MAX_DELEGATION_TTL_SECONDS)
 * plus clock tolerance, so a delegation can never be presented again after its id aged out.
 */
export const DELEGATION_REPLAY_TTL_MS = 15 * 60_000;
/** The longest lifetime a delegation may be minted with. */
export const MAX_DELEGATION_TTL_SECONDS = 300;

/** Header an `api_key` credential is sent in when the body names none. */
export const DEFAULT_API_KEY_HEADER = 'X-API-Key';

/**
 * Body of `PUT /v1/tenants/{t}/credentials/{name}`. Contains secret material (`secret`,
 * `clientSecret`): never log it, never echo it, never put it in an error.
 */
export interface CredentialInput {
  kind: CredentialKind;
  /** api_key and bearer. */
  secret?: string;
  /** oauth2_client_credentials. */
  clientId?: string;
  clientSecret?: string;
  tokenUrl?: string;
  /** Tool names (any version) or `name@version` allowed to use the credential. */
  allowedTools: string[];
  /** Scopes the credential may be used with; a tool's call gets the ones it asks for among them. */
  scopes?: string[];
  /** api_key only: the request header the key is sent in (default X-API-Key). */
  header?: string;
}

/** A stored credential as every read returns it: metadata, never secret material. */
export interface CredentialView {
  name: string;
  kind: CredentialKind;
  allowedTools: string[];
  scopes: string[];
  createdAt: string;
  updatedAt: string;
}

/**
 * Why a credential could not be used for a tool call: the `reason` of the broker's refusal and the
 * `code` of the `tool.failed` event that results. The call fails closed in every case.
 */
export const CREDENTIAL_FAILURES = [
  'credential_revoked',
  'credential_not_found',
  'credential_tool_not_allowed',
  'credential_scope_not_allowed',
  'credential_wrong_tenant',
  'credential_missing',
  'credential_mismatch',
  'credential_unavailable',
  'delegation_expired',
  'delegation_replayed',
  'delegation_wrong_audience',
  'delegation_invalid',
  'oauth_token_rejected',
  'oauth_token_unavailable',
] as const;
export type CredentialFailure = (typeof CREDENTIAL_FAILURES)[number];

/** What the tool-runner puts on the tool's request: one header. `value` is secret material. */
export interface CredentialInjection {
  header: string;
  value: string;
}

/** Master-key state of the broker's keyring (no key material). */
export interface KeyringStatus {
  activeMasterKeyId: string;
  masterKeyIds: string[];
  /** Tenants' data keys per master key id that wraps them. */
  dataKeys: Record<string, number>;
}

export interface RotationReport extends KeyringStatus {
  rewrapped: number;
  unchanged: number;
  failed: Array<{ tenantId: string; code: string }>;
}

const toolRef = '^[a-zA-Z][a-zA-Z0-9_-]{0,63}(@[0-9A-Za-z][0-9A-Za-z._-]{0,31})?$';
const scopeToken = '^[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,256}$';
const secretString = { type: 'string', minLength: 1, maxLength: 16_384 } as const;

/**
 * JSON Schema of the credential body. Error messages name fields and rules only (Ajv never quotes
 * the value), so a rejected body's secret does not come back in the 400.
 */
export const credentialBodySchema = {
  $id: 'agentmesh/credential-body',
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'allowedTools'],
  properties: {
    kind: { enum: CREDENTIAL_KINDS },
    secret: secretString,
    clientId: { type: 'string', minLength: 1, maxLength: 1024 },
    clientSecret: secretString,
    tokenUrl: { type: 'string', pattern: '^https?://', maxLength: 2048 },
    allowedTools: { type: 'array', minItems: 1, maxItems: 128, uniqueItems: true, items: { type: 'string', pattern: toolRef } },
    scopes: { type: 'array', maxItems: 64, uniqueItems: true, items: { type: 'string', pattern: scopeToken } },
    header: { type: 'string', pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$" },
  },
  allOf: [
    {
      if: { properties: { kind: { enum: ['api_key', 'bearer'] } }, required: ['kind'] },
      then: {
        required: ['secret'],
        properties: { clientId: false, clientSecret: false, tokenUrl: false },
      },
    },
    {
      if: { properties: { kind: { const: 'oauth2_client_credentials' } }, required: ['kind'] },
      then: { required: ['clientId', 'clientSecret', 'tokenUrl'], properties: { secret: false } },
    },
    {
      if: { properties: { kind: { enum: ['bearer', 'oauth2_client_credentials'] } }, required: ['kind'] },
      then: { properties: { header: false } },
    },
  ],
} as const;

const validator = new SchemaValidator();

const KNOWN_MEMBERS = Object.keys(credentialBodySchema.properties);

/**
 * Problems of a credential body, naming fields only: never a value, and not the name of an
 * unknown member either (a secret pasted as a key must not come back in the 400). A field not
 * allowed for the body's kind is reported as such (instead of Ajv's "boolean schema is false").
 */
export function credentialBodyProblems(body: unknown): FieldProblem[] {
  const kindValue = typeof body === 'object' && body !== null ? (body as { kind?: unknown }).kind : undefined;
  const kind = typeof kindValue === 'string' && (CREDENTIAL_KINDS as readonly string[]).includes(kindValue) ? kindValue : 'given';
  return validator.problems('credential-body', credentialBodySchema, body).map((p) => {
    if (p.message === 'boolean schema is false') return { field: p.field, message: `is not allowed for kind ${kind}` };
    if (p.message === 'is not allowed' && !KNOWN_MEMBERS.includes(p.field.slice(1))) {
      return { field: '/', message: `has a member that is not allowed (allowed: ${KNOWN_MEMBERS.join(', ')})` };
    }
    return p;
  });
}

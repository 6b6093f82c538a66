/**
 * Why a delegation was refused. Messages and fields never contain the token or any secret; they
 * may name the tenant, tool and credential, which are not secret.
 */
export type DelegationErrorCode =
  /** The delegation is past its expiry. */
  | 'expired'
  /** The delegation's jti was already redeemed (single use). */
  | 'replayed'
  /** The delegation was minted for another audience than this redeemer. */
  | 'wrong_audience'
  /** The delegation belongs to another tenant than the redeemer expected. */
  | 'wrong_tenant'
  /** The tool is not the one the delegation names, or not (any more) in the credential's allowedTools. */
  | 'tool_not_allowed'
  /** The credential was deleted or revoked, or the delegation itself was revoked. */
  | 'revoked'
  /** The signature does not verify under any trusted key (forged, altered, unknown key id or algorithm). */
  | 'bad_signature'
  /** Not a delegation: malformed, wrong type or issuer, missing claims, or not yet valid. */
  | 'invalid_token'
  /** The tool asked for scopes and none of them are allowed by the credential. */
  | 'scope_not_allowed'
  /** A mint request was incomplete or asked for a lifetime above the maximum. */
  | 'invalid_request';

export class DelegationError extends Error {
  override readonly name = 'DelegationError';
  readonly code: DelegationErrorCode;

  constructor(code: DelegationErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

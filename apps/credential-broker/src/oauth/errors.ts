/**
 * Failures of an OAuth2 token source. Messages carry the token endpoint host, the HTTP status and
 * the RFC 6749 `error` code at most: never the client secret, a token or a response body.
 */
export type TokenSourceErrorCode =
  /** The options are unusable (for example a plain-http token endpoint on a non-loopback host). */
  | 'invalid_configuration'
  /** The token endpoint could not be reached (connection refused, DNS, TLS, redirect). */
  | 'token_endpoint_unreachable'
  /** The token endpoint did not answer within the timeout. */
  | 'token_endpoint_timeout'
  /** The token endpoint answered with an error status (see `status` and `oauthError`). */
  | 'token_endpoint_rejected'
  /** The token endpoint answered 2xx with something that is not a usable bearer token response. */
  | 'invalid_token_response';

export class TokenSourceError extends Error {
  override readonly name = 'TokenSourceError';
  readonly code: TokenSourceErrorCode;
  /** HTTP status of the token endpoint's answer, when there was one. */
  readonly status: number | undefined;
  /** RFC 6749 section 5.2 error code from the answer (`invalid_client`, `invalid_scope`...). */
  readonly oauthError: string | undefined;

  constructor(
    code: TokenSourceErrorCode,
    message: string,
    options: { cause?: unknown; status?: number; oauthError?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.oauthError = options.oauthError;
  }
}

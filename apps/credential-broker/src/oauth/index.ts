export { TokenSourceError, type TokenSourceErrorCode } from './errors.js';
export {
  ClientCredentialsTokenSource,
  type AccessToken,
  type ClientCredentialsOptions,
  type GetTokenOptions,
  type TokenSourceLogger,
} from './client-credentials-token-source.js';

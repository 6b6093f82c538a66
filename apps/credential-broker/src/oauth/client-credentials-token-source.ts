import { inspect } from 'node:util';
import { SecretValue } from '../crypto/secret-value.js';
import { TokenSourceError } from './errors.js';

export interface AccessToken {
  value: SecretValue;
  /** As returned by the endpoint, normally "Bearer". */
  tokenType: string;
  /** Milliseconds since the epoch, measured from when the request was sent. */
  expiresAt: number;
  /** The scopes granted when the endpoint says, otherwise the scopes requested. */
  scopes: string[];
}

/** pino-compatible subset; only non-secret fields are ever passed. */
export interface TokenSourceLogger {
  debug(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface ClientCredentialsOptions {
  tokenUrl: string | URL;
  clientId: string;
  clientSecret: SecretValue;
  /** Scopes used when getToken() is called without any. */
  scopes?: readonly string[];
  /** Extra form parameters some providers need (`audience`, `resource`). */
  extraParams?: Readonly<Record<string, string>>;
  /** Refresh this long before expiry (ms). Default 30 000; at most half the token's lifetime. */
  refreshSkewMs?: number;
  /** Lifetime assumed when the endpoint omits `expires_in` (s). Default 300. */
  defaultExpiresInSeconds?: number;
  /** Per request (ms). Default 10 000. */
  timeoutMs?: number;
  /** Milliseconds since the epoch. */
  now?: () => number;
  fetch?: typeof fetch;
  logger?: TokenSourceLogger;
  /** Allow plain http to a non-loopback host (never in production). Default false. */
  allowInsecureHttp?: boolean;
}

export interface GetTokenOptions {
  /** Defaults to the source's configured scopes. Order and duplicates do not matter. */
  scopes?: readonly string[];
  /** Skip the cache (for example after the resource server answered 401 to the cached token). */
  forceRefresh?: boolean;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
const OAUTH_ERROR = /^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$/;
const SCOPE = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

const silent: TokenSourceLogger = { debug: () => undefined, warn: () => undefined };

/**
 * OAuth2 client-credentials grant (RFC 6749 section 4.4) with client_secret_basic authentication.
 * Tokens are cached per scope set and refreshed before they expire; concurrent callers share one
 * request. If an early refresh fails while the cached token is still valid, the cached token is
 * returned and the failure logged. Neither the client secret nor a token is ever logged or put in
 * an error.
 */
export class ClientCredentialsTokenSource {
  readonly #url: URL;
  readonly #clientId: string;
  readonly #clientSecret: SecretValue;
  readonly #scopes: readonly string[];
  readonly #extraParams: Readonly<Record<string, string>>;
  readonly #refreshSkewMs: number;
  readonly #defaultExpiresInSeconds: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #fetch: typeof fetch;
  readonly #logger: TokenSourceLogger;
  /** Per scope set: the token and when to start refreshing it. */
  readonly #cache = new Map<string, { token: AccessToken; refreshAt: number }>();
  readonly #inflight = new Map<string, Promise<AccessToken>>();

  constructor(options: ClientCredentialsOptions) {
    let url: URL;
    try {
      url = new URL(options.tokenUrl);
    } catch (cause) {
      throw new TokenSourceError('invalid_configuration', 'tokenUrl is not a URL', { cause });
    }
    const insecureOk = options.allowInsecureHttp === true || LOOPBACK.has(url.hostname);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && insecureOk)) {
      throw new TokenSourceError('invalid_configuration', `token endpoint ${url.host} must use https`);
    }
    if (url.username || url.password) {
      throw new TokenSourceError('invalid_configuration', 'tokenUrl must not carry credentials');
    }
    if (typeof options.clientId !== 'string' || options.clientId.length === 0) {
      throw new TokenSourceError('invalid_configuration', 'clientId must be a non-empty string');
    }
    if (!SecretValue.isSecretValue(options.clientSecret)) {
      throw new TokenSourceError('invalid_configuration', 'clientSecret must be a SecretValue');
    }
    this.#url = url;
    this.#clientId = options.clientId;
    this.#clientSecret = options.clientSecret;
    this.#scopes = options.scopes ?? [];
    this.#extraParams = options.extraParams ?? {};
    this.#refreshSkewMs = options.refreshSkewMs ?? 30_000;
    this.#defaultExpiresInSeconds = options.defaultExpiresInSeconds ?? 300;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#fetch = options.fetch ?? fetch;
    this.#logger = options.logger ?? silent;
  }

  async getToken(options: GetTokenOptions = {}): Promise<AccessToken> {
    const scopes = normalizeScopes(options.scopes ?? this.#scopes);
    const key = scopes.join(' ');
    const entry = this.#cache.get(key);
    const cached = entry?.token;
    if (entry && !options.forceRefresh && this.#now() < entry.refreshAt) return entry.token;

    let inflight = this.#inflight.get(key);
    if (!inflight) {
      inflight = this.#request(scopes).then(({ token, sentAt }) => {
        // Refresh `skew` before expiry, but never earlier than half-way through a short-lived token.
        const skew = Math.min(this.#refreshSkewMs, (token.expiresAt - sentAt) / 2);
        this.#cache.set(key, { token, refreshAt: token.expiresAt - skew });
        return token;
      });
      const settled = inflight.finally(() => this.#inflight.delete(key));
      settled.catch(() => undefined);
      this.#inflight.set(key, inflight);
    }
    try {
      return await inflight;
    } catch (error) {
      const code = error instanceof TokenSourceError ? error.code : 'unknown';
      if (cached && !options.forceRefresh && this.#now() < cached.expiresAt) {
        this.#logger.warn({ host: this.#url.host, code }, 'oauth token refresh failed; using the cached token until it expires');
        return cached;
      }
      throw error;
    }
  }

  /** Drops cached tokens (all, or those of one scope set). */
  invalidate(scopes?: readonly string[]): void {
    if (scopes === undefined) this.#cache.clear();
    else this.#cache.delete(normalizeScopes(scopes).join(' '));
  }

  async #request(scopes: string[]): Promise<{ token: AccessToken; sentAt: number }> {
    const body = new URLSearchParams({ grant_type: 'client_credentials' });
    if (scopes.length > 0) body.set('scope', scopes.join(' '));
    for (const [name, value] of Object.entries(this.#extraParams)) {
      if (name !== 'grant_type' && name !== 'scope') body.set(name, value);
    }
    const credentials = `${formEncode(this.#clientId)}:${formEncode(this.#clientSecret.reveal())}`;
    const sentAt = this.#now();
    const host = this.#url.host;

    let response: Response;
    try {
      response = await this.#fetch(this.#url, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: body.toString(),
        redirect: 'error',
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (cause) {
      if (isTimeout(cause)) {
        throw new TokenSourceError('token_endpoint_timeout', `token endpoint ${host} did not answer in ${this.#timeoutMs} ms`);
      }
      throw new TokenSourceError('token_endpoint_unreachable', `token endpoint ${host} is unreachable`, {
        cause: sanitizeCause(cause),
      });
    }

    let text: string;
    try {
      text = await response.text();
    } catch (cause) {
      throw new TokenSourceError(
        isTimeout(cause) ? 'token_endpoint_timeout' : 'token_endpoint_unreachable',
        `token endpoint ${host} broke off its answer`,
        { status: response.status },
      );
    }
    // Parse errors are not kept as causes: their messages quote the body, which may hold a token.
    const json = parseJsonObject(text);

    if (!response.ok) {
      const oauthError = typeof json?.error === 'string' && OAUTH_ERROR.test(json.error) ? json.error : undefined;
      this.#logger.warn({ host, status: response.status, oauthError }, 'oauth token request rejected');
      throw new TokenSourceError(
        'token_endpoint_rejected',
        `token endpoint ${host} answered ${response.status}${oauthError ? ` (${oauthError})` : ''}`,
        { status: response.status, oauthError },
      );
    }
    if (!json || typeof json.access_token !== 'string' || json.access_token.length === 0) {
      throw new TokenSourceError('invalid_token_response', `token endpoint ${host} answered without an access_token`, {
        status: response.status,
      });
    }
    const tokenType = json.token_type === undefined ? 'Bearer' : json.token_type;
    if (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer') {
      throw new TokenSourceError('invalid_token_response', `token endpoint ${host} answered a non-bearer token`, {
        status: response.status,
      });
    }
    const expiresIn = parseExpiresIn(json.expires_in) ?? this.#defaultExpiresInSeconds;
    const granted =
      typeof json.scope === 'string' ? normalizeScopes(json.scope.split(' ').filter((s) => s.length > 0)) : scopes;
    this.#logger.debug({ host, status: response.status, expiresIn, scopes: granted }, 'oauth token fetched');
    const token: AccessToken = {
      value: SecretValue.from(json.access_token),
      tokenType,
      expiresAt: sentAt + expiresIn * 1000,
      scopes: granted,
    };
    return { token, sentAt };
  }

  toJSON(): Record<string, unknown> {
    return { tokenUrl: this.#url.href, clientId: this.#clientId };
  }

  [inspect.custom](): string {
    return `ClientCredentialsTokenSource { tokenUrl: '${this.#url.href}', clientId: '${this.#clientId}' }`;
  }
}

function normalizeScopes(scopes: readonly string[]): string[] {
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !SCOPE.test(scope)) {
      throw new TokenSourceError('invalid_configuration', 'scopes must be RFC 6749 scope tokens');
    }
  }
  return [...new Set(scopes)].sort();
}

/** RFC 6749 section 2.3.1: client id and secret are form-encoded before Basic encoding. */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function parseExpiresIn(value: unknown): number | undefined {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  cause?: unknown;
}

/** Duck-typed: fetch's errors may come from another realm (DOMException, undici), so no instanceof. */
function asErrorLike(value: unknown): ErrorLike | undefined {
  return typeof value === 'object' && value !== null ? (value as ErrorLike) : undefined;
}

function isTimeout(error: unknown): boolean {
  const name = asErrorLike(error)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

/** Keeps the network error's name, code and message (no request data), dropping anything else. */
function sanitizeCause(cause: unknown): Error | undefined {
  const outer = asErrorLike(cause);
  const detail = asErrorLike(outer?.cause) ?? outer;
  if (!detail) return undefined;
  const message = typeof detail.message === 'string' ? detail.message : 'network error';
  const safe = new Error(typeof detail.code === 'string' ? `${detail.code}: ${message}` : message);
  if (typeof detail.name === 'string') safe.name = detail.name;
  return safe;
}

import { afterEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { SecretValue } from '../crypto/secret-value.js';
import { ClientCredentialsTokenSource, type ClientCredentialsOptions } from './client-credentials-token-source.js';
import { TokenSourceError } from './errors.js';

const CLIENT_SECRET = 'canary-client-secret: +&=/ü';
const TOKEN_PREFIX = 'canary-access-token-';
const T0 = Date.UTC(2030, 0, 1);

interface Reply {
  status?: number;
  body?: unknown;
  delayMs?: number;
  hang?: boolean;
}

interface RecordedRequest {
  method?: string;
  authorization?: string;
  contentType?: string;
  form: URLSearchParams;
}

interface TokenEndpoint {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

const defaultReply = (n: number): Reply => ({
  body: { access_token: `${TOKEN_PREFIX}${n}`, token_type: 'Bearer', expires_in: 100 },
});

const open: TokenEndpoint[] = [];

async function startTokenEndpoint(reply: (n: number, req: RecordedRequest) => Reply = defaultReply): Promise<TokenEndpoint> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const recorded: RecordedRequest = {
        method: req.method,
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')),
      };
      requests.push(recorded);
      const r = reply(requests.length, recorded);
      if (r.hang) return;
      setTimeout(() => {
        res.writeHead(r.status ?? 200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(typeof r.body === 'string' ? r.body : JSON.stringify(r.body ?? {}));
      }, r.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint: TokenEndpoint = {
    url: `http://127.0.0.1:${port}/oauth/token`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  open.push(endpoint);
  return endpoint;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((endpoint) => endpoint.close()));
});

function source(endpoint: TokenEndpoint, overrides: Partial<ClientCredentialsOptions> = {}) {
  const clock = { now: T0 };
  const logs: string[] = [];
  const logger = {
    debug: (fields: Record<string, unknown>, message: string) => logs.push(`debug ${message} ${JSON.stringify(fields)}`),
    warn: (fields: Record<string, unknown>, message: string) => logs.push(`warn ${message} ${JSON.stringify(fields)}`),
  };
  const tokens = new ClientCredentialsTokenSource({
    tokenUrl: endpoint.url,
    clientId: 'agent mesh:client',
    clientSecret: SecretValue.from(CLIENT_SECRET),
    scopes: ['charges:read'],
    refreshSkewMs: 10_000,
    now: () => clock.now,
    logger,
    ...overrides,
  });
  return { tokens, clock, logs };
}

async function failure(promise: Promise<unknown>): Promise<TokenSourceError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(TokenSourceError);
    return error as TokenSourceError;
  }
  throw new Error('expected a TokenSourceError, but the call succeeded');
}

describe('ClientCredentialsTokenSource', () => {
  it('posts a form-encoded client_credentials grant with client_secret_basic authentication', async () => {
    const endpoint = await startTokenEndpoint();
    const { tokens } = source(endpoint, { extraParams: { audience: 'https://api.example.com' } });
    const token = await tokens.getToken();
    expect(token.value.reveal()).toBe(`${TOKEN_PREFIX}1`);
    expect(token.tokenType).toBe('Bearer');
    expect(token.expiresAt).toBe(T0 + 100_000);
    expect(token.scopes).toEqual(['charges:read']);

    const [request] = endpoint.requests;
    expect(request.method).toBe('POST');
    expect(request.contentType).toBe('application/x-www-form-urlencoded');
    expect(request.form.get('grant_type')).toBe('client_credentials');
    expect(request.form.get('scope')).toBe('charges:read');
    expect(request.form.get('audience')).toBe('https://api.example.com');
    expect(request.form.has('client_secret')).toBe(false);
    const [scheme, encoded] = request.authorization!.split(' ');
    expect(scheme).toBe('Basic');
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    // RFC 6749 2.3.1: each part form-encoded, so the ":" inside them cannot split the pair wrongly.
    expect(new URLSearchParams(`v=${decoded.slice(0, colon)}`).get('v')).toBe('agent mesh:client');
    expect(new URLSearchParams(`v=${decoded.slice(colon + 1)}`).get('v')).toBe(CLIENT_SECRET);
  });

  it('caches the token until shortly before it expires, then refreshes it', async () => {
    const endpoint = await startTokenEndpoint();
    const { tokens, clock } = source(endpoint);
    expect((await tokens.getToken()).value.reveal()).toBe(`${TOKEN_PREFIX}1`);
    clock.now = T0 + 50_000;
    expect((await tokens.getToken()).value.reveal()).toBe(`${TOKEN_PREFIX}1`);
    clock.now = T0 + 89_999;
    expect((await tokens.getToken()).value.reveal()).toBe(`${TOKEN_PREFIX}1`);
    expect(endpoint.requests).toHaveLength(1);
    clock.now = T0 + 90_000; // expires at +100 s, skew 10 s
    const refreshed = await tokens.getToken();
    expect(refreshed.value.reveal()).toBe(`${TOKEN_PREFIX}2`);
    expect(refreshed.expiresAt).toBe(T0 + 190_000);
    expect(endpoint.requests).toHaveLength(2);
  });

  it('refreshes a short-lived token half-way through rather than on every call', async () => {
    const endpoint = await startTokenEndpoint((n) => ({ body: { access_token: `short-${n}`, token_type: 'bearer', expires_in: 8 } }));
    const { tokens, clock } = source(endpoint);
    await tokens.getToken();
    clock.now = T0 + 3_999;
    await tokens.getToken();
    expect(endpoint.requests).toHaveLength(1);
    clock.now = T0 + 4_000;
    expect((await tokens.getToken()).value.reveal()).toBe('short-2');
  });

  it('shares one request among concurrent callers, on first fetch and on refresh', async () => {
    const endpoint = await startTokenEndpoint((n) => ({ ...defaultReply(n), delayMs: 50 }));
    const { tokens, clock } = source(endpoint);
    const first = await Promise.all(Array.from({ length: 10 }, () => tokens.getToken()));
    expect(endpoint.requests).toHaveLength(1);
    expect(new Set(first.map((t) => t.value.reveal()))).toEqual(new Set([`${TOKEN_PREFIX}1`]));

    clock.now = T0 + 95_000;
    const second = await Promise.all(Array.from({ length: 10 }, () => tokens.getToken()));
    expect(endpoint.requests).toHaveLength(2);
    expect(new Set(second.map((t) => t.value.reveal()))).toEqual(new Set([`${TOKEN_PREFIX}2`]));
  });

  it('caches tokens per scope set, whatever the order of the scopes', async () => {
    const endpoint = await startTokenEndpoint();
    const { tokens } = source(endpoint);
    const a = await tokens.getToken({ scopes: ['b', 'a'] });
    const b = await tokens.getToken({ scopes: ['a', 'b', 'a'] });
    const c = await tokens.getToken();
    expect(a.value.reveal()).toBe(b.value.reveal());
    expect(c.value.reveal()).not.toBe(a.value.reveal());
    expect(endpoint.requests.map((r) => r.form.get('scope'))).toEqual(['a b', 'charges:read']);
  });

  it('records the scopes the endpoint granted and assumes a default lifetime when expires_in is missing', async () => {
    const endpoint = await startTokenEndpoint(() => ({ body: { access_token: 'x', token_type: 'Bearer', scope: 'charges:read extra' } }));
    const { tokens } = source(endpoint, { defaultExpiresInSeconds: 120 });
    const token = await tokens.getToken();
    expect(token.scopes).toEqual(['charges:read', 'extra']);
    expect(token.expiresAt).toBe(T0 + 120_000);
  });

  it('fetches again when forced or invalidated', async () => {
    const endpoint = await startTokenEndpoint();
    const { tokens } = source(endpoint);
    await tokens.getToken();
    expect((await tokens.getToken({ forceRefresh: true })).value.reveal()).toBe(`${TOKEN_PREFIX}2`);
    tokens.invalidate();
    expect((await tokens.getToken()).value.reveal()).toBe(`${TOKEN_PREFIX}3`);
    expect(endpoint.requests).toHaveLength(3);
  });

  it('keeps serving a still-valid token when an early refresh fails, and fails once it has expired', async () => {
    const endpoint = await startTokenEndpoint((n) => (n === 1 ? defaultReply(n) : { status: 503, body: { error: 'temporarily_unavailable' } }));
    const { tokens, clock, logs } = source(endpoint);
    await tokens.getToken();
    clock.now = T0 + 95_000;
    expect((await tokens.getToken()).value.reveal()).toBe(`${TOKEN_PREFIX}1`);
    expect(logs.some((line) => line.startsWith('warn oauth token refresh failed'))).toBe(true);
    clock.now = T0 + 100_000;
    const error = await failure(tokens.getToken());
    expect(error).toMatchObject({ code: 'token_endpoint_rejected', status: 503, oauthError: 'temporarily_unavailable' });
  });

  it('reports a rejected client with its OAuth error code', async () => {
    const endpoint = await startTokenEndpoint(() => ({
      status: 401,
      body: { error: 'invalid_client', error_description: `bad secret ${CLIENT_SECRET}` },
    }));
    const { tokens } = source(endpoint);
    const error = await failure(tokens.getToken());
    expect(error).toMatchObject({ name: 'TokenSourceError', code: 'token_endpoint_rejected', status: 401, oauthError: 'invalid_client' });
    expect(error.message).not.toContain(CLIENT_SECRET);
  });

  it('rejects answers that are not bearer token responses', async () => {
    const bodies: unknown[] = [
      `{"access_token": "${TOKEN_PREFIX}broken`,
      { token_type: 'Bearer' },
      { access_token: `${TOKEN_PREFIX}mac`, token_type: 'mac' },
      [`${TOKEN_PREFIX}array`],
    ];
    for (const body of bodies) {
      const endpoint = await startTokenEndpoint(() => ({ body }));
      const error = await failure(source(endpoint).tokens.getToken());
      expect(error.code).toBe('invalid_token_response');
      expect(inspect(error, { depth: 10 })).not.toContain(TOKEN_PREFIX);
    }
  });

  it('reports an unreachable endpoint and a timeout', async () => {
    const closed = await startTokenEndpoint();
    await closed.close();
    const unreachable = await failure(source(closed).tokens.getToken());
    expect(unreachable.code).toBe('token_endpoint_unreachable');

    const hanging = await startTokenEndpoint(() => ({ hang: true }));
    const timeout = await failure(source(hanging, { timeoutMs: 100 }).tokens.getToken());
    expect(timeout.code).toBe('token_endpoint_timeout');
  });

  it('refuses plain http to a non-loopback token endpoint', () => {
    const make = (tokenUrl: string, allowInsecureHttp = false) => () =>
      new ClientCredentialsTokenSource({ tokenUrl, clientId: 'c', clientSecret: SecretValue.from('s'), allowInsecureHttp });
    expect(make('http://auth.example.com/token')).toThrow(TokenSourceError);
    expect(make('ftp://auth.example.com/token')).toThrow(TokenSourceError);
    expect(make('https://user:pw@auth.example.com/token')).toThrow(TokenSourceError);
    expect(make('https://auth.example.com/token')).not.toThrow();
    expect(make('http://localhost:8080/token')).not.toThrow();
    expect(make('http://auth.internal/token', true)).not.toThrow();
  });

  it('never shows the client secret or a token in logs, renderings or errors', async () => {
    const endpoint = await startTokenEndpoint((n) =>
      n <= 2 ? defaultReply(n) : { status: 400, body: { error: 'invalid_scope', access_token: `${TOKEN_PREFIX}leak` } },
    );
    const { tokens, clock, logs } = source(endpoint);
    const token = await tokens.getToken();
    clock.now = T0 + 95_000;
    await tokens.getToken();
    const errors = [await failure(tokens.getToken({ forceRefresh: true }))];
    await endpoint.close();
    errors.push(await failure(tokens.getToken({ forceRefresh: true })));

    const renderings = [
      ...logs,
      JSON.stringify(token),
      inspect(token, { depth: 10 }),
      JSON.stringify(tokens),
      inspect(tokens, { depth: 10, showHidden: true }),
      ...errors.flatMap((e) => [e.message, inspect(e, { depth: 10 }), JSON.stringify(e), String(e.stack)]),
    ];
    expect(logs.length).toBeGreaterThan(0);
    const basic = Buffer.from(`x:${CLIENT_SECRET}`).toString('base64').slice(4);
    for (const rendering of renderings) {
      expect(rendering).not.toContain(TOKEN_PREFIX);
      expect(rendering).not.toContain('canary-client-secret');
      expect(rendering).not.toContain(encodeURIComponent('canary-client-secret: '));
      expect(rendering).not.toContain(basic.slice(0, 12));
    }
  });
});

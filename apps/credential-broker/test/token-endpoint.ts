import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';

/**
 * A real OAuth2 token endpoint (client credentials grant, client_secret_basic) on a free loopback
 * port. It issues random tokens and remembers them, so a resource server can check them.
 */
export interface TokenEndpoint {
  url: string;
  /** Token requests received (accepted or not). */
  requests: number;
  /** Scope parameter of each accepted request ('' when none). */
  scopes: string[];
  /** Issued tokens → the client id they were issued to. */
  issued: Map<string, string>;
  /** Lifetime of issued tokens (s). */
  expiresIn: number;
  /** When set, every request is answered 401 invalid_client. */
  reject: boolean;
  close(): Promise<void>;
}

export async function startTokenEndpoint(clients: Record<string, string>): Promise<TokenEndpoint> {
  const ep: TokenEndpoint = {
    url: '', requests: 0, scopes: [], issued: new Map(), expiresIn: 3600, reject: false,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += c;
    ep.requests++;
    const form = new URLSearchParams(body);
    const m = /^Basic (.+)$/.exec(String(req.headers.authorization ?? ''));
    const [id, secret] = m ? Buffer.from(m[1], 'base64').toString('utf8').split(':').map(decodeURIComponent) : [];
    if (ep.reject || req.method !== 'POST' || form.get('grant_type') !== 'client_credentials' || !id || clients[id] !== secret) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_client' }));
      return;
    }
    const token = `at-${randomBytes(16).toString('hex')}`;
    ep.issued.set(token, id);
    ep.scopes.push(form.get('scope') ?? '');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
      access_token: token, token_type: 'Bearer', expires_in: ep.expiresIn, ...(form.get('scope') ? { scope: form.get('scope') } : {}),
    }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  ep.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/oauth/token`;
  return ep;
}

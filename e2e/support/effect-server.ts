import { createServer, type IncomingMessage, type Server } from 'node:http';

/**
 * A local HTTP tool with a real side effect: it counts effects per Idempotency-Key and, like a
 * well-behaved API, answers a repeated key with the stored response instead of acting again.
 * `onRequest` lets a test act (kill a service) at an exact point of a call.
 */
export interface EffectServer {
  url: string;
  port: number;
  /** requests seen, per key (retries and redeliveries included) */
  calls: Map<string, number>;
  /** side effects performed, per key */
  effects: Map<string, number>;
  /** the Authorization header of every request, per key (absent: '') */
  authorizations: Map<string, string[]>;
  onRequest?: (key: string, args: Record<string, unknown>, phase: 'after-effect') => Promise<void> | void;
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const c of req) s += c;
  return s;
}

export async function startEffectServer(): Promise<EffectServer> {
  const responses = new Map<string, string>();
  const srv: EffectServer = {
    url: '', port: 0, calls: new Map(), effects: new Map(), authorizations: new Map(),
    close: () => new Promise((r) => server.close(() => r())),
  };
  const server: Server = createServer(async (req, res) => {
    const key = String(req.headers['idempotency-key'] ?? '');
    const parsed = JSON.parse((await body(req)) || '{}') as { args?: Record<string, unknown> };
    srv.calls.set(key, (srv.calls.get(key) ?? 0) + 1);
    srv.authorizations.set(key, [...(srv.authorizations.get(key) ?? []), String(req.headers.authorization ?? '')]);
    let out = responses.get(key);
    if (out === undefined) {
      srv.effects.set(key, (srv.effects.get(key) ?? 0) + 1);
      out = JSON.stringify({ done: parsed.args ?? {}, effect: srv.effects.size });
      responses.set(key, out);
      await srv.onRequest?.(key, parsed.args ?? {}, 'after-effect');
    }
    if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json' }).end(out);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  srv.port = (server.address() as { port: number }).port;
  srv.url = `http://127.0.0.1:${srv.port}`;
  return srv;
}

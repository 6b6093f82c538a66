import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { Readable } from 'node:stream';
import { checkAddress, canonicalIp, matchEgress, type AddressClass } from './egress.js';

/**
 * A fetch whose every request (and every redirect hop it follows) is held to a tool's egress
 * rules (see egress.ts) and whose connection goes to the address that was checked.
 *
 * Why not global fetch with a custom lookup: Node 20 bundles undici for `fetch`, but its `Agent`
 * (whose `connect.lookup` option would pin the address) is not importable without installing the
 * `undici` package, and reaching into the bundled copy through its global-dispatcher symbol is an
 * internal detail. node:http/https take a `lookup` option directly, so this module resolves the
 * host once (node:dns, all addresses), checks every address, and hands node:http a lookup that
 * answers only those checked addresses: there is no second DNS query a rebinding server could
 * answer differently. Host header and TLS SNI/certificate checks keep using the host name. An IP
 * literal is checked as is (node:net does not call lookup for IP literals).
 */

/** A call was refused by the egress rules; never retried. */
export class EgressDeniedError extends Error {
  override readonly name = 'EgressDeniedError';
  readonly code = 'egress_denied';
  constructor(
    message: string,
    readonly reason: 'not_allowlisted' | 'forbidden_address' | 'unsupported_scheme' | 'unresolvable',
    readonly host: string,
    readonly address?: string,
    readonly addressClass?: AddressClass,
  ) {
    super(message);
  }
  get details(): { reason: string; host: string; address?: string; addressClass?: string } {
    return { reason: this.reason, host: this.host, ...(this.address ? { address: this.address } : {}), ...(this.addressClass ? { addressClass: this.addressClass } : {}) };
  }
}

/** A response body grew past the hard cap. */
export class ResponseTooLargeError extends Error {
  override readonly name = 'ResponseTooLargeError';
  readonly code = 'result_too_large';
  constructor(readonly limit: number) {
    super(`the response is larger than ${limit} bytes`);
  }
}

export type ResolveAll = (host: string) => Promise<LookupAddress[]>;

export interface EgressPolicy {
  egress: readonly string[];
  /** AGENTMESH_TOOL_ALLOW_LOOPBACK: a development switch that also grants loopback addresses. */
  allowLoopback?: boolean;
  /** Response bodies larger than this fail with ResponseTooLargeError. */
  maxResponseBytes?: number;
  /** DNS resolution (all addresses); node:dns lookup by default. Tests inject answers here. */
  resolve?: ResolveAll;
  /** Redirects followed when a request asks for `redirect: 'follow'` (each hop is checked). */
  maxRedirects?: number;
  /** Called when a body passes `maxResponseBytes` (the body stream errors as well). */
  onTooLarge?: (e: ResponseTooLargeError) => void;
  /**
   * Headers that carry a credential (say a tool's api-key header): a followed redirect to another
   * origin drops them, as it drops `authorization`, `proxy-authorization` and `cookie` always.
   */
  sensitiveHeaders?: readonly string[];
}

const ALWAYS_SENSITIVE = ['authorization', 'proxy-authorization', 'cookie'];

/** The request init without credential headers, for a redirect hop that leaves the origin. */
function withoutCredentials(init: RequestInit, extra: readonly string[] = []): RequestInit {
  const drop = new Set([...ALWAYS_SENSITIVE, ...extra.map((h) => h.toLowerCase())]);
  const headers: Record<string, string> = {};
  new Headers(init.headers).forEach((v, k) => { if (!drop.has(k.toLowerCase())) headers[k] = v; });
  return { ...init, headers };
}

export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

const systemResolve: ResolveAll = (host) =>
  new Promise((resolve, reject) => dnsLookup(host, { all: true, verbatim: true }, (err, addrs) => (err ? reject(err) : resolve(addrs))));

/**
 * Checks `url` against the policy and resolves its host: every resolved address must pass.
 * Returns the checked addresses; throws EgressDeniedError otherwise.
 */
export async function resolveForEgress(url: URL, policy: EgressPolicy): Promise<LookupAddress[]> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new EgressDeniedError(`the scheme ${url.protocol} is not allowed`, 'unsupported_scheme', host);
  }
  const match = matchEgress(url, policy.egress);
  if (!match.allowed) throw new EgressDeniedError(`egress to ${url.host} is not allowed for this tool`, 'not_allowlisted', host);
  const literal = canonicalIp(host);
  let addrs: LookupAddress[];
  if (literal !== null) {
    addrs = [{ address: host, family: literal.includes(':') ? 6 : 4 }];
  } else {
    try {
      addrs = await (policy.resolve ?? systemResolve)(host);
    } catch (e) {
      throw new EgressDeniedError(`cannot resolve ${host}: ${(e as Error).message}`, 'unresolvable', host);
    }
    if (addrs.length === 0) throw new EgressDeniedError(`${host} resolves to no address`, 'unresolvable', host);
  }
  for (const a of addrs) {
    const v = checkAddress(url, a.address, policy.egress, match, policy.allowLoopback ?? false);
    if (!v.ok) {
      throw new EgressDeniedError(
        `egress to ${url.host} is not allowed: it resolves to ${a.address}, a ${v.class.replace('_', '-')} address the egress list does not name`,
        'forbidden_address', host, a.address, v.class,
      );
    }
  }
  return addrs;
}

/** A lookup that answers only the checked addresses (node:net calls it with `all` true or false). */
function pinnedLookup(addrs: LookupAddress[]): LookupFunction {
  return ((_host: string, options: { all?: boolean; family?: number | string }, cb: (...args: unknown[]) => void) => {
    const fam = options?.family === 'IPv4' ? 4 : options?.family === 'IPv6' ? 6 : Number(options?.family) || 0;
    const list = fam ? addrs.filter((a) => a.family === fam) : addrs;
    if (list.length === 0) {
      cb(Object.assign(new Error(`no checked address of family ${fam}`), { code: 'ENOTFOUND' }));
      return;
    }
    if (options?.all) cb(null, list);
    else cb(null, list[0].address, list[0].family);
  }) as unknown as LookupFunction;
}

// Keep-alive pools, one per (scheme, host, port, checked address set): a pooled socket is reused
// only by a request whose own check produced the same addresses, so a socket opened under one
// tool's grant (say, an explicitly named internal address) never serves a request that was only
// allowed public addresses. Idle sockets close after AGENT_IDLE_MS; the least recently used pool
// is dropped (not destroyed: its requests finish, its idle sockets time out) past MAX_AGENTS.
const MAX_AGENTS = 128;
const AGENT_IDLE_MS = 15_000;
const agents = new Map<string, HttpAgent>();

function agentFor(https: boolean, host: string, port: number | string, addrs: LookupAddress[]): HttpAgent {
  const key = `${https ? 'https' : 'http'}|${host}|${port}|${addrs.map((a) => a.address).sort().join(',')}`;
  let agent = agents.get(key);
  if (agent) {
    agents.delete(key);
  } else {
    const opts = { keepAlive: true, maxSockets: 32, timeout: AGENT_IDLE_MS };
    agent = https ? new HttpsAgent(opts) : new HttpAgent(opts);
    if (agents.size >= MAX_AGENTS) agents.delete(agents.keys().next().value as string);
  }
  agents.set(key, agent);
  return agent;
}

function bodyBytes(body: RequestInit['body']): Buffer | null {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (body instanceof URLSearchParams) return Buffer.from(body.toString(), 'utf8');
  throw new TypeError('guarded fetch: only string, bytes and URLSearchParams bodies are supported');
}

function capped(res: IncomingMessage, policy: EgressPolicy): ReadableStream<Uint8Array> {
  const web = Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>;
  const limit = policy.maxResponseBytes;
  if (limit === undefined) return web;
  let seen = 0;
  return web.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > limit) {
        const e = new ResponseTooLargeError(limit);
        policy.onTooLarge?.(e);
        controller.error(e);
      }
      else controller.enqueue(chunk);
    },
  }));
}

async function oneRequest(url: URL, init: RequestInit, addrs: LookupAddress[], policy: EgressPolicy): Promise<Response> {
  const https = url.protocol === 'https:';
  const method = (init.method ?? 'GET').toUpperCase();
  const headers: Record<string, string> = {};
  new Headers(init.headers).forEach((v, k) => { headers[k] = v; });
  const body = bodyBytes(init.body);
  if (body) headers['content-length'] = String(body.length);
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port || (https ? 443 : 80);
  const opts: RequestOptions = {
    protocol: url.protocol,
    hostname,
    port,
    path: `${url.pathname}${url.search}`,
    method,
    headers,
    lookup: pinnedLookup(addrs),
    agent: agentFor(https, hostname, port, addrs),
    ...(init.signal ? { signal: init.signal } : {}),
  };
  init.signal?.throwIfAborted();
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(opts, resolve);
    req.once('error', reject);
    req.end(body ?? undefined);
  });
  const out = new Headers();
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) out.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
  const status = res.statusCode ?? 502;
  const noBody = method === 'HEAD' || status === 204 || status === 205 || status === 304;
  if (noBody) res.resume();
  return new Response(noBody ? null : capped(res, policy), { status: status < 200 ? 502 : status, statusText: res.statusMessage ?? '', headers: out });
}

/**
 * A fetch (as the MCP SDK's `fetch` option and the http transport use it) bound to one tool's
 * egress policy. `redirect: 'manual'` returns 3xx responses as they are (the caller follows and
 * each hop comes back here); `'error'` fails on one; `'follow'` (the default) follows up to
 * `maxRedirects` hops, checking each.
 */
export function guardedFetch(policy: EgressPolicy): FetchLike {
  return async (input, init = {}) => {
    let url = new URL(input);
    let req = init;
    const max = policy.maxRedirects ?? 3;
    for (let hop = 0; ; hop++) {
      const addrs = await resolveForEgress(url, policy);
      const res = await oneRequest(url, req, addrs, policy);
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location || req.redirect === 'manual') return res;
      await res.body?.cancel().catch(() => undefined);
      if (req.redirect === 'error') throw new TypeError(`redirect to ${location} refused (redirect: 'error')`);
      if (hop >= max) throw new TypeError(`more than ${max} redirects`);
      const next = new URL(location, url);
      if (next.origin !== url.origin) req = withoutCredentials(req, policy.sensitiveHeaders);
      url = next;
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && (req.method ?? 'GET').toUpperCase() === 'POST')) {
        req = { ...req, method: 'GET', body: null };
      }
    }
  };
}

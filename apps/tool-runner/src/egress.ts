import { isIP } from 'node:net';

/**
 * Egress rules of the tool-runner, pure (no I/O): the allowlist matcher and the classifier of
 * resolved addresses. The I/O side (DNS, connect to the checked address) is in guarded-fetch.ts.
 *
 * Two checks apply to every request an http or mcp tool makes, on every redirect hop:
 * 1. the URL's host must be on the tool's egress allowlist (`host`, `host:port`, `*.domain`, an IP
 *    or `[ipv6]`, optionally with a port);
 * 2. every address the host resolves to must be public. Private, loopback, link-local (incl. the
 *    cloud metadata address 169.254.169.254), unique-local, CGNAT, "this network" (0.0.0.0/8),
 *    multicast and reserved addresses are refused, unless the egress list grants them explicitly:
 *    an entry naming that IP (`127.0.0.1:8080`, `10.0.0.5`, `[::1]:8080`), or an entry naming the
 *    URL's host with its port exactly (`localhost:8080`). A bare name (`localhost`) or a wildcard
 *    (`*.corp.example`) grants public addresses only, so a DNS answer cannot smuggle a request
 *    to an internal address.
 */

/** What kind of address an IP is; everything but `public` is refused unless granted explicitly. */
export type AddressClass =
  | 'public'
  | 'private'
  | 'loopback'
  | 'link_local'
  | 'unique_local'
  | 'cgnat'
  | 'unspecified'
  | 'multicast'
  | 'reserved'
  | 'invalid';

function ipv4Octets(ip: string): number[] | null {
  if (isIP(ip) !== 4) return null;
  return ip.split('.').map(Number);
}

function classifyV4(o: readonly number[]): AddressClass {
  const [a, b, c] = o;
  if (a === 0) return 'unspecified'; // 0.0.0.0/8 "this network"
  if (a === 10) return 'private';
  if (a === 100 && b >= 64 && b <= 127) return 'cgnat'; // 100.64.0.0/10
  if (a === 127) return 'loopback';
  if (a === 169 && b === 254) return 'link_local'; // incl. 169.254.169.254 (instance metadata)
  if (a === 172 && b >= 16 && b <= 31) return 'private';
  if (a === 192 && b === 168) return 'private';
  if (a === 192 && b === 0 && c === 0) return 'reserved'; // 192.0.0.0/24 IETF protocol assignments
  if (a === 198 && (b === 18 || b === 19)) return 'reserved'; // 198.18.0.0/15 benchmarking
  if (a >= 224 && a <= 239) return 'multicast';
  if (a >= 240) return 'reserved'; // 240.0.0.0/4 and the broadcast address
  return 'public';
}

/** The eight 16-bit groups of an IPv6 address (zone id dropped), or null. */
export function ipv6Groups(ip: string): number[] | null {
  const s = ip.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (isIP(s) !== 6) return null;
  let text = s;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const o = ipv4Octets(dotted[1]);
    if (!o) return null;
    tail.push((o[0] << 8) | o[1], (o[2] << 8) | o[3]);
    text = text.slice(0, -dotted[1].length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  let groups: number[];
  const dbl = text.indexOf('::');
  if (dbl >= 0) {
    const head = parse(text.slice(0, dbl));
    const rest = parse(text.slice(dbl + 2));
    const fill = 8 - head.length - rest.length - tail.length;
    if (fill < 0) return null;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest, ...tail];
  } else {
    groups = [...parse(text), ...tail];
  }
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}

function embeddedV4(hi: number, lo: number): number[] {
  return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff];
}

function classifyV6(g: readonly number[]): AddressClass {
  const zeroUntil = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeroUntil(8)) return 'unspecified'; // ::
  if (zeroUntil(7) && g[7] === 1) return 'loopback'; // ::1
  if (zeroUntil(5) && g[5] === 0xffff) return classifyV4(embeddedV4(g[6], g[7])); // ::ffff:a.b.c.d (mapped)
  if (zeroUntil(6)) return 'reserved'; // ::a.b.c.d (deprecated IPv4-compatible)
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return classifyV4(embeddedV4(g[6], g[7])); // NAT64
  if (g[0] === 0x2002) { // 6to4 carries an IPv4 address in bits 16..47
    const inner = classifyV4(embeddedV4(g[1], g[2]));
    if (inner !== 'public') return inner;
  }
  if ((g[0] & 0xffc0) === 0xfe80) return 'link_local'; // fe80::/10
  if ((g[0] & 0xffc0) === 0xfec0) return 'private'; // fec0::/10 (deprecated site-local)
  if ((g[0] & 0xfe00) === 0xfc00) return 'unique_local'; // fc00::/7
  if ((g[0] & 0xff00) === 0xff00) return 'multicast'; // ff00::/8
  if (g[0] === 0x0100 && g.slice(1, 4).every((x) => x === 0)) return 'reserved'; // 100::/64 discard-only
  return 'public';
}

/** Classifies an IPv4 or IPv6 address (IPv4-mapped and NAT64 forms by their IPv4 address). */
export function classifyAddress(ip: string): AddressClass {
  const v4 = ipv4Octets(ip);
  if (v4) return classifyV4(v4);
  const v6 = ipv6Groups(ip);
  return v6 ? classifyV6(v6) : 'invalid';
}

/** The canonical text of an IP (so `[0:0::1]` and `::1` compare equal), or null for a name. */
export function canonicalIp(s: string): string | null {
  const bare = s.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 4) return bare;
  const g = ipv6Groups(bare);
  if (!g) return null;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return embeddedV4(g[6], g[7]).join('.'); // mapped → IPv4
  return g.map((x) => x.toString(16)).join(':');
}

interface Entry { host: string; port?: string; wildcard: boolean; ip: string | null }

function parseEntry(entry: string): Entry {
  const e = entry.trim().toLowerCase();
  let host: string;
  let port: string | undefined;
  if (e.startsWith('[')) {
    const end = e.indexOf(']');
    host = e.slice(1, end);
    port = e.slice(end + 1).startsWith(':') ? e.slice(end + 2) : undefined;
  } else {
    const colon = e.lastIndexOf(':');
    [host, port] = colon >= 0 ? [e.slice(0, colon), e.slice(colon + 1)] : [e, undefined];
  }
  const ip = canonicalIp(host);
  return { host: ip ?? host, port: port || undefined, wildcard: !ip && host.startsWith('*.'), ip };
}

const defaultPort = (url: URL): string => url.port || (url.protocol === 'https:' ? '443' : '80');
const urlHost = (url: URL): string => {
  const h = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return canonicalIp(h) ?? h;
};

export interface EgressMatch {
  /** The host is on the allowlist. */
  allowed: boolean;
  /**
   * A matching entry names the host exactly: an IP entry, or `host:port` with the URL's port.
   * Such an entry also grants non-public addresses of that host.
   */
  explicit: boolean;
}

/** Matches a URL against a tool's egress allowlist. */
export function matchEgress(url: URL, egress: readonly string[]): EgressMatch {
  const host = urlHost(url);
  const hostIsIp = canonicalIp(host) !== null;
  const port = defaultPort(url);
  let allowed = false;
  let explicit = false;
  for (const raw of egress) {
    const e = parseEntry(raw);
    if (e.port !== undefined && e.port !== port) continue;
    if (e.wildcard) {
      const suffix = e.host.slice(1); // ".domain"
      if (!hostIsIp && host.endsWith(suffix) && host.length > suffix.length) allowed = true;
      continue;
    }
    if (e.host !== host) continue;
    allowed = true;
    if (e.ip !== null || e.port !== undefined) explicit = true;
  }
  return { allowed, explicit };
}

/** Whether a URL's host is on a tool's egress allowlist (`host`, `host:port` or `*.domain`). */
export function egressAllowed(url: URL, egress: readonly string[]): boolean {
  return matchEgress(url, egress).allowed;
}

export interface AddressVerdict {
  ok: boolean;
  address: string;
  class: AddressClass;
}

/**
 * Whether the tool may connect to `address` (one resolved address of `url`'s host): public
 * addresses always (the host was matched already); others only when the matching entry is
 * explicit or some entry names that IP (with the URL's port, if the entry has a port).
 * `allowLoopback` (AGENTMESH_TOOL_ALLOW_LOOPBACK, a development switch) also grants loopback.
 */
export function checkAddress(url: URL, address: string, egress: readonly string[], match: EgressMatch, allowLoopback = false): AddressVerdict {
  const cls = classifyAddress(address);
  if (cls === 'public') return { ok: true, address, class: cls };
  if (cls === 'invalid') return { ok: false, address, class: cls };
  if (match.explicit) return { ok: true, address, class: cls };
  if (cls === 'loopback' && allowLoopback) return { ok: true, address, class: cls };
  const ip = canonicalIp(address);
  const port = defaultPort(url);
  const named = egress.some((raw) => {
    const e = parseEntry(raw);
    return e.ip !== null && e.ip === ip && (e.port === undefined || e.port === port);
  });
  return { ok: named, address, class: cls };
}

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { LookupAddress } from 'node:dns';
import { startHttpServer, startMcpServer, type HttpFixture, type McpFixture } from '../test/fixtures.js';
import type { EgressPolicy, ResolveAll } from './guarded-fetch.js';
import { httpAttempt } from './http-transport.js';
import { McpClientService } from './mcp-client.js';

/** Egress enforcement against real local servers: the allowlist and the resolved addresses, on every hop. */
describe('egress enforcement', () => {
  let web: HttpFixture;
  let mcp: McpFixture;
  const lookups: string[] = [];
  /** Test DNS: a few names with fixed answers, everything else from the system resolver. */
  const fakeDns: Record<string, LookupAddress[]> = {
    'metadata.test': [{ address: '169.254.169.254', family: 4 }],
    'tool.test': [{ address: '127.0.0.1', family: 4 }],
    'mixed.test': [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.8', family: 4 }],
  };
  let system: ResolveAll;
  const resolve: ResolveAll = async (host) => {
    lookups.push(host);
    return fakeDns[host] ?? system(host);
  };
  const policy = (egress: string[]): EgressPolicy => ({ egress, resolve, maxResponseBytes: 1024 * 1024 });
  const call = (url: string, egress: string[]) => httpAttempt(url, { a: 1 }, `key-${Math.random()}`, policy(egress), 5000);

  beforeAll(async () => {
    web = await startHttpServer();
    mcp = await startMcpServer();
    const dns = await import('node:dns');
    system = (host) => dns.promises.lookup(host, { all: true, verbatim: true });
  });
  afterAll(async () => {
    await web?.close();
    await mcp?.close();
  });

  it('reaches 127.0.0.1 when the egress list names the IP and port', async () => {
    expect(await call(`${web.url}/json`, [`127.0.0.1:${web.port}`])).toMatchObject({ ok: true, result: { ok: true, args: { a: 1 } } });
  });

  it('refuses a name that resolves to loopback (localhost) unless host:port is named', async () => {
    const url = `http://localhost:${web.port}/json`;
    expect(await call(url, ['localhost'])).toMatchObject({
      ok: false, error: { code: 'egress_denied', retryable: false, details: { reason: 'forbidden_address', addressClass: 'loopback' } },
    });
    expect(await call(url, ['*.localhost', 'localhost:1'])).toMatchObject({ ok: false, error: { code: 'egress_denied', details: { reason: 'not_allowlisted' } } });
    expect(await call(url, [`localhost:${web.port}`])).toMatchObject({ ok: true });
  });

  it('connects to the address it checked and keeps the host name in the Host header', async () => {
    lookups.length = 0;
    const res = await call(`http://tool.test:${web.port}/json`, [`tool.test:${web.port}`]);
    expect(res).toMatchObject({ ok: true, result: { host: `tool.test:${web.port}` } });
    expect(lookups).toEqual(['tool.test']); // one resolution, no second query a rebinding DNS could answer
  });

  it('refuses a host when any of its addresses is internal', async () => {
    expect(await call('http://mixed.test/json', ['mixed.test'])).toMatchObject({
      ok: false, error: { code: 'egress_denied', details: { reason: 'forbidden_address', address: '10.0.0.8', addressClass: 'private' } },
    });
  });

  it('refuses the instance metadata address 169.254.169.254', async () => {
    expect(await call('http://metadata.test/latest/meta-data/', ['metadata.test'])).toMatchObject({
      ok: false, error: { code: 'egress_denied', details: { reason: 'forbidden_address', address: '169.254.169.254', addressClass: 'link_local' } },
    });
    expect(await call('http://169.254.169.254/latest/meta-data/', ['metadata.test', '*.254'])).toMatchObject({
      ok: false, error: { code: 'egress_denied', details: { reason: 'not_allowlisted' } },
    });
    expect(await call('http://[::ffff:169.254.169.254]/latest/meta-data/', ['metadata.test'])).toMatchObject({ ok: false, error: { code: 'egress_denied' } });
  });

  it('checks every redirect hop: a hop to a host off the list, to a loopback name or to the metadata address is refused', async () => {
    const egress = [`127.0.0.1:${web.port}`, 'localhost', 'metadata.test'];
    const via = (to: string) => `${web.url}/redirect?to=${encodeURIComponent(to)}`;
    expect(await call(via('http://evil.example.com/steal'), egress)).toMatchObject({ ok: false, error: { code: 'egress_denied', details: { reason: 'not_allowlisted', host: 'evil.example.com' } } });
    // (localhost on the allowed port passes: the entry 127.0.0.1:<port> names that address)
    expect(await call(via('http://localhost:9/json'), egress)).toMatchObject({ ok: false, error: { code: 'egress_denied', details: { reason: 'forbidden_address', addressClass: 'loopback' } } });
    expect(await call(via('http://metadata.test/latest/meta-data/'), egress)).toMatchObject({ ok: false, error: { code: 'egress_denied', details: { addressClass: 'link_local' } } });
    expect(await call(via('http://169.254.169.254/latest/meta-data/'), egress)).toMatchObject({ ok: false, error: { code: 'egress_denied', details: { reason: 'not_allowlisted' } } });
    expect(await call(via('file:///etc/passwd'), egress)).toMatchObject({ ok: false, error: { code: 'egress_denied', details: { reason: 'unsupported_scheme' } } });
    expect(await call(via(`${web.url}/json`), egress)).toMatchObject({ ok: true, result: { ok: true } }); // an allowed hop is followed
  });

  it('holds MCP servers to the same rules when a tool is called', async () => {
    const client = new McpClientService({ mcpListTtlMs: 0 });
    const digest = await client.definitionDigest(mcp.url, 'say', policy([`127.0.0.1:${mcp.port}`]), 5000);
    const invoke = (url: string, egress: string[]) => client.invoke({ url, tool: 'say', args: { text: 'x' }, expectedDigest: digest, policy: policy(egress), timeoutMs: 5000, idempotencyKey: 'k1' });
    expect(await invoke(mcp.url, [`127.0.0.1:${mcp.port}`])).toMatchObject({ changed: false, outcome: { ok: true } });
    expect(await invoke(`http://localhost:${mcp.port}/mcp`, ['localhost'])).toMatchObject({
      changed: false, outcome: { ok: false, error: { code: 'egress_denied', details: { reason: 'forbidden_address' } } },
    });
    expect(await invoke('http://metadata.test/mcp', ['metadata.test'])).toMatchObject({
      changed: false, outcome: { ok: false, error: { code: 'egress_denied', details: { addressClass: 'link_local' } } },
    });
  });
});

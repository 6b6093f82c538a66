import { describe, expect, it } from '@jest/globals';
import { canonicalIp, checkAddress, classifyAddress, egressAllowed, matchEgress, type AddressClass } from './egress.js';

describe('the address classifier', () => {
  const cases: Array<[string, AddressClass]> = [
    ['8.8.8.8', 'public'],
    ['93.184.216.34', 'public'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['169.254.169.254', 'link_local'],
    ['169.254.0.1', 'link_local'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.254', 'cgnat'],
    ['100.100.100.200', 'cgnat'],
    ['100.128.0.1', 'public'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['224.0.0.251', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link_local'],
    ['fe80::1%eth0', 'link_local'],
    ['febf::1', 'link_local'],
    ['fc00::1', 'unique_local'],
    ['fd12:3456:789a::1', 'unique_local'],
    ['ff02::1', 'multicast'],
    ['2606:4700:4700::1111', 'public'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'link_local'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::a9fe:a9fe', 'link_local'],
    ['2002:7f00:1::1', 'loopback'],
    ['::127.0.0.1', 'reserved'],
    ['not-an-ip', 'invalid'],
    ['300.1.1.1', 'invalid'],
  ];
  it.each(cases)('classifies %s as %s', (ip, cls) => {
    expect(classifyAddress(ip)).toBe(cls);
  });

  it('canonicalises IP spellings so entries and URLs compare equal', () => {
    expect(canonicalIp('[0:0:0:0:0:0:0:1]')).toBe(canonicalIp('::1'));
    expect(canonicalIp('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(canonicalIp('localhost')).toBeNull();
  });
});

describe('the egress matcher', () => {
  const u = (s: string) => new URL(s);

  it('matches names, names with ports and wildcards', () => {
    expect(egressAllowed(u('https://api.example.com/x'), ['api.example.com'])).toBe(true);
    expect(egressAllowed(u('https://API.Example.com/x'), ['api.example.com'])).toBe(true);
    expect(egressAllowed(u('https://api.example.com:8443/x'), ['api.example.com:443'])).toBe(false);
    expect(egressAllowed(u('https://api.example.com/x'), ['api.example.com:443'])).toBe(true);
    expect(egressAllowed(u('http://api.example.com/x'), ['api.example.com:443'])).toBe(false);
    expect(egressAllowed(u('https://a.b.example.com/'), ['*.example.com'])).toBe(true);
    expect(egressAllowed(u('https://example.com/'), ['*.example.com'])).toBe(false);
    expect(egressAllowed(u('https://badexample.com/'), ['*.example.com'])).toBe(false);
    expect(egressAllowed(u('https://example.com.evil.net/'), ['example.com'])).toBe(false);
    expect(egressAllowed(u('https://api.example.com/'), [])).toBe(false);
  });

  it('matches IP entries whatever the spelling, and never by wildcard', () => {
    expect(egressAllowed(u('http://127.0.0.1:8080/'), ['127.0.0.1:8080'])).toBe(true);
    expect(egressAllowed(u('http://2130706433:8080/'), ['127.0.0.1:8080'])).toBe(true); // URL normalises the decimal form
    expect(egressAllowed(u('http://127.0.0.1:8081/'), ['127.0.0.1:8080'])).toBe(false);
    expect(egressAllowed(u('http://[::1]:8080/'), ['[0::1]:8080'])).toBe(true);
    expect(egressAllowed(u('http://10.0.0.1/'), ['*.0.0.1'])).toBe(false);
  });

  it('calls an entry explicit when it names an IP, or the host with its port', () => {
    expect(matchEgress(u('http://127.0.0.1:8080/'), ['127.0.0.1:8080'])).toEqual({ allowed: true, explicit: true });
    expect(matchEgress(u('http://10.0.0.5/'), ['10.0.0.5'])).toEqual({ allowed: true, explicit: true });
    expect(matchEgress(u('http://localhost:8080/'), ['localhost:8080'])).toEqual({ allowed: true, explicit: true });
    expect(matchEgress(u('http://localhost:8080/'), ['localhost'])).toEqual({ allowed: true, explicit: false });
    expect(matchEgress(u('https://a.corp.example/'), ['*.corp.example:443'])).toEqual({ allowed: true, explicit: false });
  });
});

describe('the resolved-address check', () => {
  const u = (s: string) => new URL(s);
  const verdict = (url: string, addr: string, egress: string[], allowLoopback = false) =>
    checkAddress(u(url), addr, egress, matchEgress(u(url), egress), allowLoopback).ok;

  it('lets public addresses through for any allowlisted host', () => {
    expect(verdict('https://api.example.com/', '93.184.216.34', ['api.example.com'])).toBe(true);
    expect(verdict('https://a.example.com/', '2606:4700::1', ['*.example.com'])).toBe(true);
  });

  it('refuses internal addresses behind a bare name or a wildcard', () => {
    expect(verdict('http://localhost:8080/', '127.0.0.1', ['localhost'])).toBe(false);
    expect(verdict('http://localhost:8080/', '::1', ['localhost'])).toBe(false);
    expect(verdict('https://metadata.example.com/', '169.254.169.254', ['*.example.com'])).toBe(false);
    expect(verdict('https://x.example.com/', '10.0.0.7', ['x.example.com'])).toBe(false);
    expect(verdict('https://x.example.com/', '100.64.1.1', ['x.example.com'])).toBe(false);
    expect(verdict('https://x.example.com/', 'fd00::1', ['x.example.com'])).toBe(false);
    expect(verdict('https://x.example.com/', 'fe80::1', ['x.example.com'])).toBe(false);
    expect(verdict('https://x.example.com/', '0.0.0.0', ['x.example.com'])).toBe(false);
    expect(verdict('https://x.example.com/', '::ffff:169.254.169.254', ['x.example.com'])).toBe(false);
  });

  it('allows internal addresses the egress list names explicitly', () => {
    expect(verdict('http://127.0.0.1:8080/', '127.0.0.1', ['127.0.0.1:8080'])).toBe(true);
    expect(verdict('http://localhost:8080/', '127.0.0.1', ['localhost:8080'])).toBe(true);
    expect(verdict('http://svc.internal/', '10.0.0.5', ['svc.internal', '10.0.0.5'])).toBe(true);
    expect(verdict('http://svc.internal/', '10.0.0.5', ['svc.internal', '10.0.0.5:9999'])).toBe(false);
    expect(verdict('http://169.254.169.254/', '169.254.169.254', ['169.254.169.254'])).toBe(true);
  });

  it('grants loopback under the development switch, and nothing else', () => {
    expect(verdict('http://localhost:8080/', '127.0.0.1', ['localhost'], true)).toBe(true);
    expect(verdict('http://x.example.com/', '10.0.0.1', ['x.example.com'], true)).toBe(false);
  });
});

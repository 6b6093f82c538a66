import { describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import { loadConfig } from './config.js';
import { ConfigSecret, parseMasterKeys } from './secrets.js';

const KEY_A = Buffer.alloc(32, 7).toString('base64');
const KEY_B = Buffer.alloc(32, 9).toString('base64url');

describe('master keys and delegation settings from the environment', () => {
  it('parses id:base64 lists; a single key is active by default', () => {
    const one = parseMasterKeys(`mk-1:${KEY_A}`, undefined);
    expect(one.problems).toEqual([]);
    expect(one.value?.active).toBe('mk-1');
    expect(one.value?.keys[0].key.reveal()).toBe(KEY_A);
    const two = parseMasterKeys(`mk-1:${KEY_A}, mk-2:${KEY_B}`, 'mk-2');
    expect(two.value?.keys.map((k) => k.id)).toEqual(['mk-1', 'mk-2']);
    expect(two.value?.active).toBe('mk-2');
  });

  it('names every problem without ever quoting key material', () => {
    const cases: Array<[string, string | undefined, RegExp]> = [
      [`mk-1:${KEY_A},mk-2:${KEY_B}`, undefined, /must name the active key/],
      [`mk-1:${KEY_A}`, 'mk-9', /is not among the ids/],
      [`mk-1:${KEY_A.slice(0, 20)}`, undefined, /exactly 32 bytes/],
      [`${KEY_A}`, undefined, /must be <id>:<base64>/],
      [`mk-1:${KEY_A},mk-1:${KEY_A}`, undefined, /twice/],
    ];
    for (const [list, active, problem] of cases) {
      const r = parseMasterKeys(list, active);
      expect(r.value).toBeUndefined();
      expect(r.problems.join('\n')).toMatch(problem);
      expect(r.problems.join('\n')).not.toContain(KEY_A.slice(0, 20));
    }
  });

  it('loads them into the config, where no rendering shows the material', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\\nMC4CAQAwBQYDK2VwBCIEIHk8N9P1J0x3bY3X0sQ4y2cJ1v8pV0q7y0m0d6Xk4Qw1\\n-----END PRIVATE KEY-----';
    const cfg = loadConfig('credential-broker', {
      AGENTMESH_MASTER_KEYS: `mk-1:${KEY_A},mk-2:${KEY_B}`, AGENTMESH_MASTER_KEY_ACTIVE: 'mk-2',
      AGENTMESH_DELEGATION_SIGNING_KEY: pem, AGENTMESH_DELEGATION_TTL: '30s',
    });
    expect(cfg.masterKeys?.active).toBe('mk-2');
    expect(cfg.delegationTtlSeconds).toBe(30);
    expect(cfg.delegationKeyId).toBe('d1');
    expect(cfg.delegationSigningKey?.reveal()).toMatch(/^-----BEGIN PRIVATE KEY-----\nMC4C/);
    for (const rendering of [JSON.stringify(cfg), inspect(cfg, { depth: 10 }), `${cfg.delegationSigningKey}`]) {
      expect(rendering).not.toContain(KEY_A);
      expect(rendering).not.toContain(KEY_B);
      expect(rendering).not.toContain('MC4CAQAw');
    }
  });

  it('defaults: keys in the data folder, delegations live 60 s', () => {
    const cfg = loadConfig('credential-broker', {});
    expect(cfg.masterKeys).toBeUndefined();
    expect(cfg.delegationSigningKey).toBeUndefined();
    expect(cfg.delegationTtlSeconds).toBe(60);
  });

  it('refuses a delegation lifetime above 300 s and an active key without keys', () => {
    expect(() => loadConfig('credential-broker', { AGENTMESH_DELEGATION_TTL: '10m' })).toThrow(/AGENTMESH_DELEGATION_TTL/);
    expect(() => loadConfig('credential-broker', { AGENTMESH_MASTER_KEY_ACTIVE: 'mk-1' })).toThrow(/AGENTMESH_MASTER_KEYS is not/);
    expect(() => loadConfig('credential-broker', { AGENTMESH_DELEGATION_SIGNING_KEY: 'hunter2' })).toThrow(/PKCS#8/);
    try {
      loadConfig('credential-broker', { AGENTMESH_MASTER_KEYS: `mk-1:${KEY_A}`, AGENTMESH_DELEGATION_SIGNING_KEY: 'hunter2' });
    } catch (e) {
      expect((e as Error).message).not.toContain('hunter2');
      expect((e as Error).message).not.toContain(KEY_A);
    }
  });

  it('renders a ConfigSecret as [redacted]', () => {
    const s = new ConfigSecret('value');
    expect([String(s), `${s}`, JSON.stringify({ s }), inspect(s)]).toEqual(['[redacted]', '[redacted]', '{"s":"[redacted]"}', '[redacted]']);
  });
});

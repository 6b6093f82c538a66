import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  addMasterKey, ensureDelegationKeyFile, ensureMasterKeysFile, fileStamp, publicPemOf, readMasterKeysFile, retireMasterKeys,
} from './key-files.js';

const dirs: string[] = [];
const dir = () => { const d = mkdtempSync(join(tmpdir(), 'agentmesh-keys-')); dirs.push(d); return d; };
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

describe('key files of the embedded mesh', () => {
  it('generates one master key on first start, mode 0600, and keeps it afterwards', () => {
    const d = dir();
    const first = ensureMasterKeysFile(d);
    expect(first.generated).toBe(true);
    expect(statSync(first.file).mode & 0o777).toBe(0o600);
    const keys = readMasterKeysFile(first.file);
    expect(keys.keys).toHaveLength(1);
    expect(Buffer.from(keys.keys[0].key.reveal(), 'base64')).toHaveLength(32);
    expect(ensureMasterKeysFile(d).generated).toBe(false);
    expect(readMasterKeysFile(first.file).keys[0].key.reveal()).toBe(keys.keys[0].key.reveal());
  });

  it('adds a key as the active one, keeps the old until retired, and changes the file stamp each time', () => {
    const { file } = ensureMasterKeysFile(dir());
    const s0 = fileStamp(file);
    const old = readMasterKeysFile(file).active;
    const { id, previous } = addMasterKey(file);
    expect(previous).toBe(old);
    const s1 = fileStamp(file);
    expect(s1).not.toBe(s0);
    expect(readMasterKeysFile(file)).toMatchObject({ active: id });
    expect(readMasterKeysFile(file).keys.map((k) => k.id)).toEqual([old, id]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(retireMasterKeys(file)).toEqual([old]);
    expect(readMasterKeysFile(file).keys.map((k) => k.id)).toEqual([id]);
    expect(fileStamp(file)).not.toBe(s1);
    expect(retireMasterKeys(file)).toEqual([]);
  });

  it('refuses a malformed file without quoting it', () => {
    const file = join(dir(), 'master.keys');
    writeFileSync(file, 'AGENTMESH_MASTER_KEYS=mk-1:c2hvcnQtc2VjcmV0\n');
    expect(() => readMasterKeysFile(file)).toThrow(/exactly 32 bytes/);
    try { readMasterKeysFile(file); } catch (e) { expect((e as Error).message).not.toContain('c2hvcnQtc2VjcmV0'); }
  });

  it('generates an Ed25519 delegation key, mode 0600, whose public half can be derived', () => {
    const d = dir();
    const { pem, generated } = ensureDelegationKeyFile(d);
    expect(generated).toBe(true);
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(statSync(join(d, 'delegation.key')).mode & 0o777).toBe(0o600);
    expect(publicPemOf(pem)).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(ensureDelegationKeyFile(d)).toEqual({ pem, generated: false });
    expect(readFileSync(join(d, 'delegation.key'), 'utf8').trim()).toBe(pem);
    expect(() => publicPemOf('-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----')).toThrow(/not a usable private key/);
  });
});

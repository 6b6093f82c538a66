import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseMasterKeys, type MasterKeysConfig } from '#libs/config';

/**
 * Key files of the embedded mesh, in the data folder next to `admin.key`, created on first start
 * with mode 0600 when the configuration names no keys:
 *
 * - `master.keys`: the master keys (key-encryption keys), in the environment's own format
 *   (`AGENTMESH_MASTER_KEYS=id:base64,...` and `AGENTMESH_MASTER_KEY_ACTIVE=id`), so the file can
 *   be copied into a secret store as it is. scripts/rotate-master-key.mjs adds keys to it.
 * - `delegation.key`: the Ed25519 private key (PKCS#8 PEM) delegations are signed with.
 *
 * Nothing here logs or throws key material.
 */
export const MASTER_KEYS_FILE = 'master.keys';
export const DELEGATION_KEY_FILE = 'delegation.key';

const HEADER = [
  '# agentmesh credential-broker master keys (key-encryption keys). Secret: keep this file mode 0600',
  '# and back it up with the data folder; without it no stored credential can be decrypted.',
  '# scripts/rotate-master-key.mjs adds a key, makes it active and re-wraps every tenant data key.',
];

export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
  readonly code = 'invalid_key_file';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A new master key id, sortable by creation time: `mk-20250101T120000Z-1a2b`. */
export function newMasterKeyId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `mk-${stamp}-${randomBytes(2).toString('hex')}`;
}

function render(keys: ReadonlyArray<{ id: string; material: string }>, active: string): string {
  return [...HEADER, `AGENTMESH_MASTER_KEYS=${keys.map((k) => `${k.id}:${k.material}`).join(',')}`, `AGENTMESH_MASTER_KEY_ACTIVE=${active}`, ''].join('\n');
}

/** Writes a file with mode 0600 atomically (temporary file, then rename). */
function writeSecretFile(file: string, content: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, file);
}

/** Creates a file with mode 0600 unless it exists; false when another process created it first. */
function createSecretFile(file: string, content: string): boolean {
  mkdirSync(dirname(file), { recursive: true });
  try {
    writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** Reads a master key file. Problems name the file and the entry, never key material. */
export function readMasterKeysFile(file: string): MasterKeysConfig {
  const vars = new Map<string, string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    if (eq > 0) vars.set(t.slice(0, eq).trim(), t.slice(eq + 1).trim());
  }
  const parsed = parseMasterKeys(vars.get('AGENTMESH_MASTER_KEYS') ?? '', vars.get('AGENTMESH_MASTER_KEY_ACTIVE'), {
    keys: `${file}: AGENTMESH_MASTER_KEYS`,
    active: `${file}: AGENTMESH_MASTER_KEY_ACTIVE`,
  });
  if (!parsed.value) throw new KeyFileError(`invalid master key file: ${parsed.problems.join('; ')}`);
  return parsed.value;
}

/** The master key file of the data folder, generated (one fresh key, mode 0600) when absent. */
export function ensureMasterKeysFile(dataDir: string): { file: string; generated: boolean } {
  const file = join(dataDir, MASTER_KEYS_FILE);
  let generated = false;
  try {
    statSync(file);
  } catch {
    const id = newMasterKeyId();
    generated = createSecretFile(file, render([{ id, material: randomBytes(32).toString('base64') }], id));
  }
  return { file, generated };
}

/**
 * Adds a fresh master key to the file and makes it the active one; the old keys stay (they still
 * unwrap data keys until those are re-wrapped). Returns the new id and the previous active id.
 */
export function addMasterKey(file: string, now = new Date()): { id: string; previous: string } {
  const current = readMasterKeysFile(file);
  const id = newMasterKeyId(now);
  const keys = [...current.keys.map((k) => ({ id: k.id, material: k.key.reveal() })), { id, material: randomBytes(32).toString('base64') }];
  writeSecretFile(file, render(keys, id));
  return { id, previous: current.active };
}

/** Removes every master key but the active one and those in `keep`. Returns the ids removed. */
export function retireMasterKeys(file: string, keep: readonly string[] = []): string[] {
  const current = readMasterKeysFile(file);
  const kept = current.keys.filter((k) => k.id === current.active || keep.includes(k.id));
  const removed = current.keys.filter((k) => !kept.includes(k)).map((k) => k.id);
  if (removed.length) writeSecretFile(file, render(kept.map((k) => ({ id: k.id, material: k.key.reveal() })), current.active));
  return removed;
}

/**
 * A stamp of the file's identity and modification (inode, size, mtime), to notice when another
 * process rotated the keys (every write replaces the file by rename: a new inode).
 */
export function fileStamp(file: string): string {
  try {
    const s = statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

/** The delegation signing key file, generated (Ed25519, PKCS#8 PEM, mode 0600) when absent. Returns its PEM. */
export function ensureDelegationKeyFile(dataDir: string): { pem: string; generated: boolean } {
  const file = join(dataDir, DELEGATION_KEY_FILE);
  let generated = false;
  try {
    statSync(file);
  } catch {
    const { privateKey } = generateKeyPairSync('ed25519');
    generated = createSecretFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  }
  return { pem: readFileSync(file, 'utf8').trim(), generated };
}

/** The SPKI PEM of a PKCS#8 PEM private key. */
export function publicPemOf(privatePem: string): string {
  try {
    return createPublicKey(createPrivateKey(privatePem)).export({ type: 'spki', format: 'pem' }).toString();
  } catch {
    // the parser's error may quote the key: not kept as a cause
    throw new KeyFileError('the delegation signing key is not a usable private key');
  }
}

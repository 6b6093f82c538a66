import { inspect } from 'node:util';

/**
 * A secret read from configuration (a master key, a signing key). Every rendering of it (JSON,
 * util.inspect, template literals, String()) prints "[redacted]"; `reveal()` is the only way to
 * the value, so a logged config object cannot leak it.
 */
export class ConfigSecret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
    Object.freeze(this);
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '[redacted]';
  }

  toJSON(): string {
    return '[redacted]';
  }

  [Symbol.toPrimitive](): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return '[redacted]';
  }
}

/** One master key (key-encryption key of the credential broker): its id and its base64 material. */
export interface MasterKeyConfig {
  readonly id: string;
  /** base64 (standard or URL-safe) of exactly 32 bytes. */
  readonly key: ConfigSecret;
}

export interface MasterKeysConfig {
  readonly keys: readonly MasterKeyConfig[];
  /** The key that wraps new data keys (and that rotation re-wraps every data key under). */
  readonly active: string;
}

const MASTER_KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/**
 * Parses `id:base64,id:base64,...` (AGENTMESH_MASTER_KEYS) and the active id
 * (AGENTMESH_MASTER_KEY_ACTIVE; may be left out when there is exactly one key). Problems name the
 * entry and never quote key material.
 */
export function parseMasterKeys(
  list: string,
  active: string | undefined,
  names: { keys: string; active: string } = { keys: 'AGENTMESH_MASTER_KEYS', active: 'AGENTMESH_MASTER_KEY_ACTIVE' },
): { value?: MasterKeysConfig; problems: string[] } {
  const problems: string[] = [];
  const keys: MasterKeyConfig[] = [];
  const entries = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (entries.length === 0) problems.push(`${names.keys} names no key`);
  entries.forEach((entry, i) => {
    const colon = entry.indexOf(':');
    const id = colon < 0 ? '' : entry.slice(0, colon);
    const material = colon < 0 ? '' : entry.slice(colon + 1).trim();
    if (!MASTER_KEY_ID.test(id)) {
      problems.push(`${names.keys} entry ${i + 1} must be <id>:<base64>, the id matching [A-Za-z0-9][A-Za-z0-9._-]{0,63}`);
      return;
    }
    if (!BASE64.test(material) || Buffer.from(material, 'base64').length !== 32) {
      problems.push(`${names.keys} key ${id} must be the base64 of exactly 32 bytes`);
      return;
    }
    if (keys.some((k) => k.id === id)) {
      problems.push(`${names.keys} names key ${id} twice`);
      return;
    }
    keys.push(Object.freeze({ id, key: new ConfigSecret(material) }));
  });
  let activeId = active?.trim() || undefined;
  if (activeId === undefined && keys.length === 1) activeId = keys[0].id;
  if (activeId === undefined && keys.length > 1) problems.push(`${names.active} must name the active key when ${names.keys} has several`);
  else if (activeId !== undefined && keys.length > 0 && !keys.some((k) => k.id === activeId)) {
    problems.push(`${names.active}=${JSON.stringify(activeId)} is not among the ids of ${names.keys}`);
  }
  if (problems.length || activeId === undefined) return { problems };
  return { value: Object.freeze({ keys: Object.freeze(keys), active: activeId }), problems };
}

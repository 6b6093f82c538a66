import { KvWatchInclude, type KV } from '@nats-io/kv';
import { decodeJson, encodeJson } from '#libs/messaging';

const PLAIN = /^[A-Za-z0-9_-]+$/;

/** A key token: readable when it can be, base64url behind '=' otherwise (e.g. versions with dots). */
export function keyToken(s: string): string {
  return PLAIN.test(s) ? s : `=${Buffer.from(s, 'utf8').toString('base64url')}`;
}

/**
 * JSON documents in a JetStream KV bucket under `<tenant>.<part>...` keys. Every method takes the
 * tenant first, so no read or write can forget it. Returns plain objects.
 */
export class KvDocuments<T> {
  constructor(private readonly kv: KV) {}

  private key(tenantId: string, parts: string[]): string {
    return [keyToken(tenantId), ...parts.map(keyToken)].join('.');
  }

  async get(tenantId: string, ...parts: string[]): Promise<T | null> {
    const e = await this.kv.get(this.key(tenantId, parts));
    return e && e.operation === 'PUT' && e.length > 0 ? decodeJson<T>(e.value) : null;
  }

  /** The document and its revision, for compare-and-set updates. */
  async getWithRevision(tenantId: string, ...parts: string[]): Promise<{ value: T; revision: number } | null> {
    const e = await this.kv.get(this.key(tenantId, parts));
    return e && e.operation === 'PUT' && e.length > 0 ? { value: decodeJson<T>(e.value), revision: e.revision } : null;
  }

  async put(tenantId: string, parts: string[], value: T): Promise<void> {
    await this.kv.put(this.key(tenantId, parts), encodeJson(value));
  }

  /** Writes only if the key holds nothing; false when it already exists. */
  async create(tenantId: string, parts: string[], value: T): Promise<boolean> {
    try {
      await this.kv.create(this.key(tenantId, parts), encodeJson(value));
      return true;
    } catch (e) {
      if (/wrong last sequence|key exists/i.test((e as Error).message)) return false;
      throw e;
    }
  }

  /** Writes only if the revision is unchanged; false when another writer got there first. */
  async update(tenantId: string, parts: string[], value: T, revision: number): Promise<boolean> {
    try {
      await this.kv.update(this.key(tenantId, parts), encodeJson(value), revision);
      return true;
    } catch (e) {
      if (/wrong last sequence/i.test((e as Error).message)) return false;
      throw e;
    }
  }

  async delete(tenantId: string, ...parts: string[]): Promise<void> {
    await this.kv.delete(this.key(tenantId, parts));
  }

  /** The KV key of a document (as watches report it). */
  keyOf(tenantId: string, ...parts: string[]): string {
    return this.key(tenantId, parts);
  }

  /**
   * Calls `onChange` for every later write or delete under the key filter (default: all), so
   * caches in several processes stay current. Returns a function that stops the watch.
   */
  async watchChanges(onChange: (key: string, value: T | null) => void, filter = '>'): Promise<() => void> {
    const w = await this.kv.watch({ key: filter, include: KvWatchInclude.UpdatesOnly });
    void (async () => {
      for await (const e of w) onChange(e.key, e.operation === 'PUT' && e.length > 0 ? decodeJson<T>(e.value) : null);
    })().catch(() => undefined);
    return () => w.stop();
  }

  /** Every document of the tenant under the given key prefix. */
  async list(tenantId: string, ...prefix: string[]): Promise<T[]> {
    const filter = `${this.key(tenantId, prefix)}.>`;
    const keys: string[] = [];
    for await (const k of await this.kv.keys(filter)) keys.push(k);
    const values = await Promise.all(keys.map(async (k) => {
      const e = await this.kv.get(k);
      return e && e.operation === 'PUT' && e.length > 0 ? decodeJson<T>(e.value) : null;
    }));
    return values.filter((v): v is Awaited<T> => v !== null) as T[];
  }
}

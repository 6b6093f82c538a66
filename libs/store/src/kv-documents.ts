import { KvWatchInclude, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { decodeJson, encodeJson, JetStreamPublishError, publisherFor, WRONG_LAST_SEQUENCE, type JetStreamPublisher } from '#libs/messaging';

/** The parts of nats.js' KV Bucket used to publish writes directly. */
interface BucketInternals { subjectForKey(k: string, edit?: boolean): string; js: { nc?: NatsConnection } }

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
  /** Writes are published with the shared JetStream publisher (see libs/messaging js-publisher). */
  private readonly publisher: JetStreamPublisher | null;
  constructor(private readonly kv: KV) {
    const nc = (kv as unknown as BucketInternals).js?.nc;
    this.publisher = nc && typeof (kv as unknown as BucketInternals).subjectForKey === 'function' ? publisherFor(nc) : null;
  }

  /** Publishes a value for a key, optionally only if the key's last revision is `expected`. */
  private async write(key: string, value: T, expected?: number): Promise<number> {
    if (!this.publisher) {
      return expected === undefined ? this.kv.put(key, encodeJson(value)) : this.kv.update(key, encodeJson(value), expected);
    }
    const subject = (this.kv as unknown as BucketInternals).subjectForKey(key, true);
    let h;
    if (expected !== undefined) {
      h = natsHeaders();
      h.set('Nats-Expected-Last-Subject-Sequence', String(expected));
    }
    return (await this.publisher.publish(subject, encodeJson(value), h)).seq;
  }

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
    await this.write(this.key(tenantId, parts), value);
  }

  /** Writes only if the key holds nothing (or was deleted); false when it already exists. */
  async create(tenantId: string, parts: string[], value: T): Promise<boolean> {
    const key = this.key(tenantId, parts);
    if (await this.writeIf(key, value, 0)) return true;
    const e = await this.kv.get(key); // a delete marker counts as nothing
    return e !== null && e.operation !== 'PUT' ? this.writeIf(key, value, e.revision) : false;
  }

  /** Writes only if the revision is unchanged; false when another writer got there first. */
  async update(tenantId: string, parts: string[], value: T, revision: number): Promise<boolean> {
    return this.writeIf(this.key(tenantId, parts), value, revision);
  }

  private async writeIf(key: string, value: T, revision: number): Promise<boolean> {
    try {
      await this.write(key, value, revision);
      return true;
    } catch (e) {
      if ((e instanceof JetStreamPublishError && e.apiCode === WRONG_LAST_SEQUENCE) || /wrong last sequence|key exists/i.test((e as Error).message)) return false;
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

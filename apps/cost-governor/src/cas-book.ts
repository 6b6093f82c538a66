import type { KV } from '@nats-io/kv';
import { unavailable } from '#libs/contracts';
import { decodeJson, encodeJson } from '#libs/messaging';
import { keyToken, type BudgetDocument, type Repositories } from '#libs/store';

/** What an operation on a document returns: its result, and whether it changed the document. */
export interface OpResult<R> {
  result: R;
  changed: boolean;
}

interface Pending<T> {
  op: (doc: T) => OpResult<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface Cached<T> {
  doc: T;
  /** KV revision the document was read or written at; 0 when the key does not exist yet. */
  revision: number;
}

/**
 * Where a CasBook keeps its documents: a read with the revision, and a write that succeeds only at
 * the expected revision.
 */
export interface CasStore<T> {
  /** The document and its revision; `doc` null when there is none (revision 0, or a KV tombstone's). */
  load(tenantId: string, parts: string[]): Promise<{ doc: T | null; revision: number }>;
  /** Writes if the stored revision is still `expected` (0: only if there is no document); the new revision, or null when another writer got there first. */
  write(tenantId: string, parts: string[], doc: T, expected: number): Promise<number | null>;
}

const keyOf = (tenantId: string, parts: string[]): string => [keyToken(tenantId), ...parts.map(keyToken)].join('.');

/** Documents in a JetStream KV bucket, keyed `<tenant>.<part>...` (like KvDocuments). */
export function kvCasStore<T>(kv: KV): CasStore<T> {
  return {
    async load(tenantId, parts) {
      const e = await kv.get(keyOf(tenantId, parts));
      return e && e.operation === 'PUT' && e.length > 0 ? { doc: decodeJson<T>(e.value), revision: e.revision } : { doc: null, revision: e?.revision ?? 0 };
    },
    async write(tenantId, parts, doc, expected) {
      const key = keyOf(tenantId, parts);
      try {
        return expected === 0 ? await kv.create(key, encodeJson(doc)) : await kv.update(key, encodeJson(doc), expected);
      } catch (e) {
        if (isConflict(e)) return null;
        throw e;
      }
    },
  };
}

/**
 * The tenant's budget document through the store's `budgets` repository (libs/store: KV
 * `am_budgets` `<t>.budget`, the layout `kvCasStore` used, or MongoDB `budgets`). One document per
 * tenant: `parts` must be `['budget']`.
 */
export function budgetsCasStore<T extends object>(store: Repositories): CasStore<T> {
  const check = (parts: string[]): void => {
    if (parts.length !== 1 || parts[0] !== 'budget') throw new Error(`the budgets repository holds one document per tenant, not ${parts.join('.')}`);
  };
  return {
    async load(tenantId, parts) {
      check(parts);
      const v = await store.forTenant(tenantId).budgets.get();
      return v ? { doc: v.value as unknown as T, revision: v.revision } : { doc: null, revision: 0 };
    },
    async write(tenantId, parts, doc, expected) {
      check(parts);
      return store.forTenant(tenantId).budgets.put(doc as unknown as BudgetDocument, expected);
    },
  };
}

const MAX_ATTEMPTS = 64;
const MAX_BATCH = 512;
const MAX_CACHED = 10_000;

/** Another writer got there first (the store answered null). */
class CasConflict extends Error {
  readonly code = 'conflict';
  constructor() { super('wrong last sequence: another writer got there first'); this.name = 'CasConflict'; }
}

const isConflict = (e: unknown): boolean => e instanceof CasConflict || /wrong last sequence|key exists/i.test((e as Error)?.message ?? '');

/**
 * JSON documents (in a CasStore: a JetStream KV bucket, or a repository of libs/store) changed only by compare-and-set: read at a revision,
 * apply, write expecting that revision, and on a conflict re-read and apply again. The same rule
 * as `KvDocuments.update(…, revision)` with retry, plus two things for hot documents (one tenant's
 * budget under many concurrent calls):
 *
 * - operations on one key are queued in this process and applied in batches: one write commits
 *   every operation waiting at that moment (group commit), so concurrent callers do not fight;
 * - the last written document and revision are cached, so the common case is one KV round trip.
 *   Another process writing the key makes the write fail, which reloads it: the cache can never
 *   cause a lost update.
 *
 * Operations must be deterministic functions of the document: they may run again after a conflict.
 * Keys are `<tenant>.<part>...` like KvDocuments.
 */
export class CasBook<T> {
  private readonly cache = new Map<string, Cached<T>>();
  private readonly queues = new Map<string, Pending<T>[]>();
  /** Writes that lost a compare-and-set race and were applied again. */
  conflicts = 0;

  constructor(
    private readonly store: CasStore<T>,
    private readonly empty: (tenantId: string, parts: string[]) => T,
    private readonly onCommit?: (tenantId: string, parts: string[], doc: T, revision: number) => void,
    /** Operations committed by one write at most (1: no group commit). */
    private readonly maxBatch = MAX_BATCH,
  ) {}

  key(tenantId: string, parts: string[]): string {
    return keyOf(tenantId, parts);
  }

  /** Applies `op` atomically to the document; resolves with its result once the change is durable. */
  apply<R>(tenantId: string, parts: string[], op: (doc: T) => OpResult<R>): Promise<R> {
    const key = this.key(tenantId, parts);
    return new Promise<R>((resolve, reject) => {
      const pending = { op, resolve, reject } as Pending<T>;
      const q = this.queues.get(key);
      if (q) { q.push(pending); return; }
      this.queues.set(key, [pending]);
      void this.drain(key, tenantId, parts);
    });
  }

  /** The document as stored now (fresh read), or the empty document with revision 0. */
  async read(tenantId: string, parts: string[]): Promise<Cached<T>> {
    const key = this.key(tenantId, parts);
    const cur = await this.load(key, tenantId, parts);
    const cached = this.cache.get(key);
    if (!cached || cached.revision <= cur.revision) this.remember(key, cur);
    return { doc: structuredClone(cur.doc), revision: cur.revision };
  }

  /** The document and revision this process last read or wrote, if any (no I/O). */
  peek(tenantId: string, parts: string[]): Cached<T> | undefined {
    return this.cache.get(this.key(tenantId, parts));
  }

  /** Forgets what this process cached (tests; another writer is expected). */
  forget(): void {
    this.cache.clear();
  }

  private async load(_key: string, tenantId: string, parts: string[]): Promise<Cached<T>> {
    const { doc, revision } = await this.store.load(tenantId, parts);
    return { doc: doc ?? this.empty(tenantId, parts), revision };
  }

  private remember(key: string, c: Cached<T>): void {
    if (!this.cache.has(key) && this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, c);
  }

  private async drain(key: string, tenantId: string, parts: string[]): Promise<void> {
    const q = this.queues.get(key)!;
    try {
      while (q.length) {
        const batch = q.splice(0, this.maxBatch);
        await this.commit(key, tenantId, parts, batch);
      }
    } finally {
      this.queues.delete(key);
    }
  }

  private async commit(key: string, tenantId: string, parts: string[], batch: Pending<T>[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let cur: Cached<T>;
      try {
        cur = this.cache.get(key) ?? await this.load(key, tenantId, parts);
      } catch (e) {
        for (const p of batch) p.reject(unavailable('budget store unavailable', e));
        return;
      }
      const doc = structuredClone(cur.doc);
      const results: Array<{ ok: true; v: unknown } | { ok: false; e: unknown }> = [];
      let changed = false;
      for (const p of batch) {
        try {
          const r = p.op(doc);
          results.push({ ok: true, v: r.result });
          changed ||= r.changed;
        } catch (e) {
          results.push({ ok: false, e });
        }
      }
      const settle = () => batch.forEach((p, i) => {
        const r = results[i];
        if (r.ok) p.resolve(r.v); else p.reject(r.e);
      });
      if (!changed) {
        this.remember(key, cur);
        settle();
        return;
      }
      try {
        const revision = await this.store.write(tenantId, parts, doc, cur.revision);
        if (revision === null) throw new CasConflict();
        const next = { doc, revision };
        this.remember(key, next);
        settle();
        this.onCommit?.(tenantId, parts, doc, revision);
        return;
      } catch (e) {
        this.cache.delete(key);
        if (isConflict(e) && attempt < MAX_ATTEMPTS) {
          this.conflicts++;
          if (attempt > 3) await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
          continue;
        }
        for (const p of batch) p.reject(isConflict(e) ? unavailable('budget store is contended; retry', e) : unavailable('budget store unavailable', e));
        return;
      }
    }
  }

}

import type { KV } from '@nats-io/kv';
import type { AssignmentView } from '#libs/routing';
import { decodeJson } from '#libs/messaging';
import { KvDocuments } from '#libs/store';
import type { Logger } from '#libs/telemetry';
import { poolKey, type StoredAssignment } from './pools.js';

type Op = { readonly kind: 'put'; readonly tenantId: string; readonly parts: string[]; readonly value: StoredAssignment } | { readonly kind: 'delete'; readonly tenantId: string; readonly parts: string[] };

/**
 * Session pins in JetStream KV (BUCKETS.assignments), one key per tenant, session and model pool:
 * `<tenant>.<session>.<pool>`. Written behind the request path (a turn never waits for KV): new
 * and moved pins at once, renewals only when the pin's last-seen time moved on by a tenth of the
 * TTL since it was last written, so a restarted router finds every pin with a last-seen time at
 * most TTL/10 old. Writes to one key are never in flight twice, so the last one wins.
 */
export class AssignmentStore {
  private readonly docs: KvDocuments<StoredAssignment>;
  private readonly dirty = new Map<string, Op>();
  /** lastSeenMs as last written, per key. */
  private readonly written = new Map<string, number>();
  private loop: Promise<void> | undefined;
  private failures = 0;
  private closed = false;

  constructor(private readonly kv: KV, private readonly logger: Logger, private readonly renewEveryMs: number) {
    this.docs = new KvDocuments<StoredAssignment>(kv);
  }

  private key(tenantId: string, session: string, model: string): { k: string; parts: string[] } {
    const parts = [session, poolKey(model)];
    return { k: `${tenantId}.${parts.join('.')}`, parts };
  }

  pinned(model: string, tenantId: string, session: string, view: AssignmentView, outcome: 'new' | 'moved' | 'hit'): void {
    const { k, parts } = this.key(tenantId, session, model);
    if (outcome === 'hit') {
      const last = this.written.get(k);
      if (last !== undefined && view.lastSeenMs - last < this.renewEveryMs) return;
    }
    this.written.set(k, view.lastSeenMs);
    this.enqueue(k, { kind: 'put', tenantId, parts, value: { ...view, tenantId, session, model } });
  }

  released(model: string, tenantId: string, session: string): void {
    const { k, parts } = this.key(tenantId, session, model);
    this.written.delete(k);
    this.enqueue(k, { kind: 'delete', tenantId, parts });
  }

  /** Every persisted pin (start-up). */
  async loadAll(): Promise<StoredAssignment[]> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys('>')) keys.push(k);
    const out: StoredAssignment[] = [];
    for (let i = 0; i < keys.length; i += 256) {
      const batch = await Promise.all(keys.slice(i, i + 256).map(async (k) => {
        const e = await this.kv.get(k);
        if (!e || e.operation !== 'PUT' || e.length === 0) return null;
        try {
          const v = decodeJson<StoredAssignment>(e.value);
          return typeof v.replica === 'string' && typeof v.model === 'string' && typeof v.tenantId === 'string' ? v : null;
        } catch {
          return null;
        }
      }));
      for (const v of batch) {
        if (v === null) continue;
        out.push(v);
        this.written.set(this.key(v.tenantId, v.session, v.model).k, v.lastSeenMs);
      }
    }
    return out;
  }

  /** Resolves when everything queued so far is written. */
  async flush(): Promise<void> {
    while (this.loop !== undefined) await this.loop;
  }

  get pending(): number {
    return this.dirty.size;
  }

  private enqueue(k: string, op: Op): void {
    this.dirty.set(k, op);
    this.kick();
  }

  private kick(): void {
    if (this.loop !== undefined) return;
    this.loop = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.drain())
      .finally(() => {
        this.loop = undefined;
        if (this.dirty.size > 0 && !this.closed) this.kick();
      });
  }

  /** Writes what is queued, waiting at most `timeoutMs`; then stops retrying. */
  async close(timeoutMs = 2000): Promise<void> {
    await Promise.race([this.flush(), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    this.closed = true;
  }

  private async drain(): Promise<void> {
    while (this.dirty.size > 0 && !this.closed) {
      const batch = [...this.dirty.entries()];
      this.dirty.clear();
      const results = await Promise.allSettled(batch.map(([, op]) => (op.kind === 'put' ? this.docs.put(op.tenantId, op.parts, op.value) : this.docs.delete(op.tenantId, ...op.parts))));
      const failed = batch.filter((_, i) => results[i].status === 'rejected');
      if (failed.length > 0) {
        this.failures++;
        const err = (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason as unknown;
        if (this.failures === 1 || this.failures % 100 === 0) this.logger.warn({ err, keys: failed.length }, 'could not write session pins to KV; retrying');
        // keep the newest op per key: a later one queued meanwhile wins
        for (const [k, op] of failed) if (!this.dirty.has(k)) this.dirty.set(k, op);
        await new Promise((r) => setTimeout(r, Math.min(2000, 50 * this.failures)));
      } else {
        this.failures = 0;
      }
    }
  }
}

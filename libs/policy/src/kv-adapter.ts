import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, isTenantId } from '#libs/contracts';
import type { PolicyAdapter, TenantPolicy } from './adapter.js';
import { PolicyConflictError, PolicyRuleError } from './errors.js';
import type { TenantRule } from './rules.js';

/** The stored document: plain JSON, readable with `nats kv get am_policy <tenant>.rules`. */
interface StoredPolicy {
  readonly rules: readonly TenantRule[];
  readonly updatedAt: string;
}

const SUFFIX = '.rules';
const keyOf = (tenant: string): string => `${tenant}${SUFFIX}`;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** nats.js reports a lost compare-and-set as "wrong last sequence" (update) or "key exists" (create). */
const isCasFailure = (e: unknown): boolean => /wrong last sequence|key exists|10071/i.test(String((e as Error)?.message ?? ''));

/**
 * PolicyAdapter over a JetStream KV bucket (`am_policy`): one key per tenant (`<tenant>.rules`),
 * the tenant's rules as JSON, the KV revision as the compare-and-set token (`create` for revision
 * 0, `update(key, value, revision)` otherwise). A lost race throws PolicyConflictError, which
 * PolicyService retries. The built-in defaults and the platform grants are code and never stored.
 *
 * The bucket keeps one revision per key; the audit trail (AGENTMESH_AUDIT) keeps the history of
 * every change.
 */
export class KvPolicyAdapter implements PolicyAdapter {
  private constructor(private readonly kv: KV) {}

  /** Opens (creating if needed) the policy bucket. */
  static async open(nc: NatsConnection, opts: { bucket?: string; replicas?: number } = {}): Promise<KvPolicyAdapter> {
    const kv = await new Kvm(nc).create(opts.bucket ?? BUCKETS.policy, { history: 1, replicas: opts.replicas ?? 1 });
    return new KvPolicyAdapter(kv);
  }

  /** Over an already opened bucket (tests). */
  static over(kv: KV): KvPolicyAdapter {
    return new KvPolicyAdapter(kv);
  }

  async loadPolicy(): Promise<readonly TenantPolicy[]> {
    const keys: string[] = [];
    for await (const k of await this.kv.keys(`*${SUFFIX}`)) keys.push(k);
    const out = await Promise.all(keys.map((k) => this.loadTenantPolicy(k.slice(0, -SUFFIX.length))));
    return out.filter((t) => t.revision > 0);
  }

  async loadTenantPolicy(tenant: string): Promise<TenantPolicy> {
    if (!isTenantId(tenant)) return { tenant, rules: [], revision: 0 };
    const e = await this.kv.get(keyOf(tenant));
    if (!e) return { tenant, rules: [], revision: 0 };
    // a deleted key has a revision but no rules: the next write updates on that revision
    if (e.operation !== 'PUT' || e.length === 0) return { tenant, rules: [], revision: e.revision };
    let doc: StoredPolicy;
    try {
      doc = JSON.parse(dec.decode(e.value)) as StoredPolicy;
    } catch (err) {
      throw new PolicyRuleError(`the stored policy of ${tenant} is not JSON`, { cause: err });
    }
    return { tenant, rules: Array.isArray(doc.rules) ? doc.rules : [], revision: e.revision };
  }

  async savePolicy(tenant: string, rules: readonly TenantRule[], expectedRevision: number): Promise<number> {
    if (!isTenantId(tenant)) throw new PolicyRuleError(`"${String(tenant)}" is not a tenant id`, { fields: [{ field: 'tenant', message: 'not a tenant id' }] });
    const doc: StoredPolicy = { rules, updatedAt: new Date().toISOString() };
    const value = enc.encode(JSON.stringify(doc));
    try {
      return expectedRevision === 0 ? await this.kv.create(keyOf(tenant), value) : await this.kv.update(keyOf(tenant), value, expectedRevision);
    } catch (err) {
      if (isCasFailure(err)) {
        throw new PolicyConflictError(`the policy of ${tenant} changed since revision ${expectedRevision}`, { cause: err });
      }
      throw err;
    }
  }
}

import { PolicyConflictError } from './errors.js';
import type { TenantRule } from './rules.js';

/** One tenant's stored rules with the revision they were read at (0: nothing stored yet). */
export interface TenantPolicy {
  readonly tenant: string;
  readonly rules: readonly TenantRule[];
  readonly revision: number;
}

/**
 * Persistence of tenant policy rules. The built-in defaults (model.ts) are code, not data, and are
 * never stored. Rules are plain JSON, one record per tenant, so the store layer can keep them in
 * JetStream KV under one key per tenant and use the KV revision for compare-and-set
 * (`kv.create` for revision 0, `kv.update(key, value, revision)` otherwise).
 */
export interface PolicyAdapter {
  /** Every tenant's stored rules: read at start and on every reload. */
  loadPolicy(): Promise<readonly TenantPolicy[]>;
  /** One tenant's rules and current revision (`{ rules: [], revision: 0 }` when none are stored). */
  loadTenantPolicy(tenant: string): Promise<TenantPolicy>;
  /**
   * Replaces one tenant's rules if its stored revision still equals `expectedRevision`, and
   * returns the new revision. Throws PolicyConflictError when another writer got there first.
   */
  savePolicy(tenant: string, rules: readonly TenantRule[], expectedRevision: number): Promise<number>;
}

const copy = (rules: readonly TenantRule[]): TenantRule[] => JSON.parse(JSON.stringify(rules)) as TenantRule[];

/** An in-memory PolicyAdapter: tests, and a single process without a store. */
export class InMemoryPolicyAdapter implements PolicyAdapter {
  private readonly tenants = new Map<string, { rules: TenantRule[]; revision: number }>();
  private seq = 0;

  async loadPolicy(): Promise<readonly TenantPolicy[]> {
    return [...this.tenants].map(([tenant, t]) => ({ tenant, rules: copy(t.rules), revision: t.revision }));
  }

  async loadTenantPolicy(tenant: string): Promise<TenantPolicy> {
    const t = this.tenants.get(tenant);
    return { tenant, rules: t ? copy(t.rules) : [], revision: t?.revision ?? 0 };
  }

  async savePolicy(tenant: string, rules: readonly TenantRule[], expectedRevision: number): Promise<number> {
    const current = this.tenants.get(tenant)?.revision ?? 0;
    if (current !== expectedRevision) {
      throw new PolicyConflictError(`policy of ${tenant} is at revision ${current}, not ${expectedRevision}`);
    }
    const revision = ++this.seq;
    this.tenants.set(tenant, { rules: copy(rules), revision });
    return revision;
  }
}

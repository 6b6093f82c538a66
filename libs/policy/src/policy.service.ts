import { isTenantId, RISK_TIERS } from '#libs/contracts';
import type { Enforcer } from 'casbin';
import { InMemoryPolicyAdapter, type PolicyAdapter, type TenantPolicy } from './adapter.js';
import type { AttributeValue } from './condition.js';
import { PolicyConflictError, PolicyRuleError } from './errors.js';
import {
  ANY,
  buildEnforcer,
  DEFAULT_TENANT_POLICY,
  PLATFORM_ADMIN,
  PLATFORM_DOMAIN,
  PLATFORM_POLICY,
  type PolicyRow,
} from './model.js';
import type { PolicyWatcher } from './nats-watcher.js';
import { BUDGET_STATES, getOperation, type OperationSpec } from './operations.js';
import { isSubjectName, normalizeRule, ruleKey, ruleToRow, type TenantRule } from './rules.js';

/** A tenant API key: its tenant, its roles, and optionally its id (for per-key rules and role links). */
export interface TenantPrincipal {
  readonly tenant: string;
  readonly roles?: readonly string[];
  /** A principal id such as `key:01J...`; rules and role assignments may name it. */
  readonly subject?: string;
}

/** The platform admin key. It holds no tenant role and reaches only platform grants. */
export interface PlatformAdminPrincipal {
  readonly platformAdmin: true;
}

export type Principal = TenantPrincipal | PlatformAdminPrincipal;

export interface CanRequest {
  readonly principal: Principal;
  /**
   * The tenant whose resources the request touches: the `{t}` of the route. For `tenants.create`
   * the tenant being created (optional).
   */
  readonly tenant?: string;
  /** An OperationId; unknown strings are denied. */
  readonly operation: string;
  /** Request attributes (`riskTier`, `budgetState`, ...); undefined entries are ignored. */
  readonly attrs?: Readonly<Record<string, AttributeValue | undefined>>;
}

export type DecisionReason =
  /** an allow rule matched and no deny rule did */
  | 'granted'
  /** an explicit deny rule matched (deny beats allow) */
  | 'denied_by_rule'
  /** no allow rule matched */
  | 'no_grant'
  /** the key belongs to another tenant than the one requested */
  | 'tenant_mismatch'
  /** a platform operation asked for with a tenant key */
  | 'platform_only'
  | 'unknown_operation'
  /** an attribute the operation requires was not supplied (fail closed) */
  | 'missing_attribute'
  /** a malformed tenant id, role name or attribute value */
  | 'invalid_request';

/** The rule that decided, as stored or built in. */
export interface MatchedRule {
  readonly subject: string;
  readonly domain: string;
  readonly operation: string;
  readonly access: string;
  readonly when: string;
  readonly effect: 'allow' | 'deny';
  /** true for the built-in defaults and platform grants; false for the tenant's own rules. */
  readonly builtin: boolean;
}

export interface Decision {
  readonly allowed: boolean;
  readonly reason: DecisionReason;
  /** One sentence for logs, audit and problem details; never carries secrets. */
  readonly explanation: string;
  readonly operation: string;
  readonly tenant?: string;
  readonly scope: 'tenant' | 'platform';
  /** The deciding rule: the deny that refused, or an allow that granted. */
  readonly rule?: MatchedRule;
  /** The role or subject through which that rule matched. */
  readonly via?: string;
}

export interface PolicyServiceOptions {
  /** Where tenant rules persist; in memory by default. */
  readonly adapter?: PolicyAdapter;
  /** Announces changes to, and hears changes from, other instances (NatsPolicyWatcher). */
  readonly watcher?: PolicyWatcher;
  /** Failures that have no caller to throw to (background reloads, lost announcements). */
  readonly onError?: (err: Error) => void;
  /** Compare-and-set attempts for one rule change before PolicyConflictError; 5 by default. */
  readonly maxWriteAttempts?: number;
}

interface Snapshot {
  readonly enforcer: Enforcer;
  readonly rules: ReadonlyMap<string, readonly TenantRule[]>;
}

const isPlatformAdmin = (p: Principal): p is PlatformAdminPrincipal =>
  (p as PlatformAdminPrincipal).platformAdmin === true;

function toMatched(row: readonly string[], platform: boolean): MatchedRule | undefined {
  if (row.length < 6) return undefined;
  const [subject, domain, operation, access, when, effect] = row;
  return {
    subject,
    domain,
    operation,
    access,
    when,
    effect: effect === 'deny' ? 'deny' : 'allow',
    builtin: platform || domain === ANY,
  };
}

function describe(rule: MatchedRule): string {
  const where = rule.builtin ? (rule.domain === PLATFORM_DOMAIN ? 'platform rule' : 'built-in rule') : `rule of ${rule.domain}`;
  const cond = rule.when === ANY ? '' : ` when ${rule.when}`;
  const access = rule.access === ANY ? '' : ` (${rule.access})`;
  return `${where} "${rule.effect} ${rule.subject} ${rule.operation}${access}${cond}"`;
}

/**
 * Decides every operation: RBAC with domains (roles per tenant) plus attribute conditions, with
 * explicit deny over allow. Tenant rules live in the adapter; platform grants in a separate
 * enforcer no tenant rule can reach.
 *
 * Create with `PolicyService.create()`, which loads the stored rules. Changes through
 * addTenantRule / removeTenantRule / replaceTenantRules are compare-and-set writes to the adapter,
 * then a local reload and a watcher announcement; other instances reload on the announcement.
 */
export class PolicyService {
  private snapshot!: Snapshot;
  /**
   * Decisions memoised for the current snapshot: a decision is a pure function of the loaded
   * policy and the request, and Casbin's evaluation was most of the gateway's CPU per request.
   * Cleared whenever a reload swaps the snapshot.
   */
  private memo = new Map<string, Promise<Decision>>();
  private static readonly MEMO_LIMIT = 10_000;
  private platform!: Enforcer;
  private readonly adapter: PolicyAdapter;
  private readonly watcher: PolicyWatcher | undefined;
  private readonly onError: (err: Error) => void;
  private readonly maxWriteAttempts: number;
  private startedLoads = 0;
  private appliedLoad = 0;
  private closed = false;
  private inFlight: Promise<void> | undefined;
  private again = false;

  private constructor(opts: PolicyServiceOptions) {
    this.adapter = opts.adapter ?? new InMemoryPolicyAdapter();
    this.watcher = opts.watcher;
    this.onError = opts.onError ?? (() => undefined);
    this.maxWriteAttempts = Math.max(1, opts.maxWriteAttempts ?? 5);
  }

  static async create(opts: PolicyServiceOptions = {}): Promise<PolicyService> {
    const svc = new PolicyService(opts);
    svc.platform = await buildEnforcer({ p: PLATFORM_POLICY, g: [] });
    await svc.reload();
    svc.watcher?.setUpdateCallback(() => svc.backgroundReload());
    return svc;
  }

  /** Reloads on an announcement; a burst of announcements costs at most one extra reload. */
  private backgroundReload(): void {
    if (this.closed) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = (async () => {
      do {
        this.again = false;
        try {
          await this.reload();
        } catch (err) {
          this.report('policy reload after a change announcement failed; keeping the previous policy', err);
        }
      } while (this.again && !this.closed);
    })().finally(() => {
      this.inFlight = undefined;
    });
  }

  /**
   * Reloads every tenant's rules from the adapter and swaps in a new enforcer. Decisions in flight
   * finish on the old one. Concurrent reloads are safe: a load that started earlier never replaces
   * the result of one that started later.
   */
  async reload(): Promise<void> {
    const load = ++this.startedLoads;
    const stored = await this.adapter.loadPolicy();
    const next = await this.build(stored);
    if (load > this.appliedLoad) {
      this.appliedLoad = load;
      this.snapshot = next;
      this.memo = new Map();
    }
  }

  /** Stops reacting to watcher announcements. The watcher and its connection belong to the caller. */
  close(): void {
    this.closed = true;
    this.watcher?.setUpdateCallback(() => undefined);
  }

  /** The rules of one tenant as currently loaded (the built-in defaults are not included). */
  tenantRules(tenant: string): readonly TenantRule[] {
    return this.snapshot.rules.get(tenant) ?? [];
  }

  /** Adds a rule to a tenant's policy; false when an identical rule is already stored. */
  async addTenantRule(tenant: string, rule: TenantRule): Promise<boolean> {
    const r = normalizeRule(tenant, rule);
    const key = ruleKey(r);
    return (await this.mutate(tenant, (rules) => (rules.some((x) => ruleKey(x) === key) ? undefined : [...rules, r]))).changed;
  }

  /** Removes a rule from a tenant's policy; false when no identical rule is stored. */
  async removeTenantRule(tenant: string, rule: TenantRule): Promise<boolean> {
    const key = ruleKey(normalizeRule(tenant, rule));
    return (await this.mutate(tenant, (rules) => {
      const rest = rules.filter((x) => ruleKey(x) !== key);
      return rest.length === rules.length ? undefined : rest;
    })).changed;
  }

  /**
   * One tenant's rules as stored, with the revision to pass back as `expectedRevision` (0: none
   * stored). Read from the adapter, so it is current even before an announced reload arrives.
   */
  async storedTenantPolicy(tenant: string): Promise<TenantPolicy> {
    if (!isTenantId(tenant)) throw new PolicyRuleError(`"${String(tenant)}" is not a tenant id`, { fields: [{ field: 'tenant', message: 'not a tenant id' }] });
    return this.adapter.loadTenantPolicy(tenant);
  }

  /**
   * Replaces a tenant's rules (`policy.put`); every rule is validated first. With
   * `expectedRevision` the write happens only if the stored revision still equals it
   * (PolicyConflictError otherwise: someone changed the policy since the caller read it); without
   * it the last writer wins. Returns the new revision (the current one when nothing changed).
   */
  async replaceTenantRules(tenant: string, rules: readonly TenantRule[], opts: { expectedRevision?: number } = {}): Promise<number> {
    const seen = new Set<string>();
    const next: TenantRule[] = [];
    rules.forEach((rule, i) => {
      let r: TenantRule;
      try {
        r = normalizeRule(tenant, rule);
      } catch (err) {
        if (err instanceof PolicyRuleError) {
          const fields = (err.extra.fields ?? []).map((f) => ({ field: `rules[${i}].${f.field}`, message: f.message }));
          throw new PolicyRuleError(`rules[${i}]: ${err.message}`, { fields, cause: err });
        }
        throw err;
      }
      const k = ruleKey(r);
      if (!seen.has(k)) {
        seen.add(k);
        next.push(r);
      }
    });
    return (await this.mutate(tenant, () => next, opts.expectedRevision)).revision;
  }

  /** Decides one operation. Never throws for a malformed request: it is denied with a reason. */
  async can(req: CanRequest): Promise<Decision> {
    const op = getOperation(req.operation);
    const platform = isPlatformAdmin(req.principal);
    const base = { operation: req.operation, tenant: req.tenant, scope: platform ? 'platform' : 'tenant' } as const;
    const deny = (reason: DecisionReason, explanation: string): Decision => ({ ...base, allowed: false, reason, explanation });

    if (!op) return deny('unknown_operation', `"${req.operation}" is not an operation`);
    if (req.tenant !== undefined && !isTenantId(req.tenant)) return deny('invalid_request', 'the requested tenant id is malformed');

    const attrs = this.attributes(req.attrs);
    if (typeof attrs === 'string') return deny('invalid_request', attrs);

    let enforcer: Enforcer;
    let subjects: string[];
    let principalDomain: string;
    let domain: string;
    if (platform) {
      if (op.scope === 'tenant' && req.tenant === undefined) return deny('invalid_request', `${op.id} needs the tenant it acts on`);
      enforcer = this.platform;
      subjects = [PLATFORM_ADMIN];
      principalDomain = PLATFORM_DOMAIN;
      domain = PLATFORM_DOMAIN;
    } else {
      const p = req.principal as TenantPrincipal;
      if (!isTenantId(p.tenant)) return deny('invalid_request', "the key's tenant id is malformed");
      if (op.scope === 'platform') return deny('platform_only', `${op.id} is reserved to the platform admin`);
      if (req.tenant === undefined) return deny('invalid_request', `${op.id} needs the tenant it acts on`);
      if (p.tenant !== req.tenant) return deny('tenant_mismatch', `a key of ${p.tenant} cannot act in ${req.tenant}`);
      subjects = [...new Set([...(p.roles ?? []), ...(p.subject !== undefined ? [p.subject] : [])])];
      if (!subjects.every(isSubjectName)) return deny('invalid_request', 'a role or subject name is malformed');
      enforcer = this.snapshot.enforcer;
      principalDomain = p.tenant;
      domain = req.tenant;
    }

    const missing = op.requiredAttributes.filter((a) => attrs[a] === undefined);
    if (missing.length > 0) return deny('missing_attribute', `${op.id} is decided on ${missing.join(', ')}, which the request did not supply`);
    if (subjects.length === 0) return deny('no_grant', 'the key carries no role');

    const key = JSON.stringify([platform, subjects, principalDomain, domain, op.id, Object.entries(attrs).sort(([a], [b]) => a.localeCompare(b))]);
    const memo = this.memo;
    const hit = memo.get(key);
    if (hit) return hit;
    if (memo.size >= PolicyService.MEMO_LIMIT) memo.clear();
    const decision = this.decide(enforcer, op, subjects, principalDomain, domain, attrs, base, platform);
    memo.set(key, decision);
    decision.catch(() => memo.delete(key));
    return decision;
  }

  private async decide(
    enforcer: Enforcer,
    op: OperationSpec,
    subjects: readonly string[],
    principalDomain: string,
    domain: string,
    attrs: Record<string, AttributeValue>,
    base: Pick<Decision, 'operation' | 'tenant' | 'scope'>,
    platform: boolean,
  ): Promise<Decision> {
    let granted: { rule: MatchedRule; via: string } | undefined;
    for (const id of subjects) {
      const [allowed, row] = await enforcer.enforceEx({ id, tenant: principalDomain }, domain, op.id, op.access, attrs);
      const rule = toMatched(row, platform);
      if (!allowed && rule?.effect === 'deny') {
        const subject = platform ? 'the platform admin' : id;
        return { ...base, allowed: false, reason: 'denied_by_rule', rule, via: id, explanation: `${op.id} denied to ${subject} by ${describe(rule)}` };
      }
      if (allowed && rule && !granted) granted = { rule, via: id };
    }
    if (granted) {
      const subject = platform ? 'the platform admin' : granted.via;
      return { ...base, allowed: true, reason: 'granted', ...granted, explanation: `${op.id} granted to ${subject} by ${describe(granted.rule)}` };
    }
    const who = platform ? 'the platform admin' : subjects.join(', ');
    return { ...base, allowed: false, reason: 'no_grant', explanation: `no rule grants ${op.id} to ${who}` };
  }

  /** Keeps primitive attributes; checks the values of known ones. Returns an error message if invalid. */
  private attributes(raw: CanRequest['attrs']): Record<string, AttributeValue> | string {
    const out: Record<string, AttributeValue> = {};
    for (const [k, v] of Object.entries(raw ?? {})) {
      if (v === undefined) continue;
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') return `attribute ${k} is not a string, number or boolean`;
      out[k] = v;
    }
    if (out.riskTier !== undefined && !(RISK_TIERS as readonly unknown[]).includes(out.riskTier)) return `riskTier must be one of ${RISK_TIERS.join(', ')}`;
    if (out.budgetState !== undefined && !(BUDGET_STATES as readonly unknown[]).includes(out.budgetState)) return `budgetState must be one of ${BUDGET_STATES.join(', ')}`;
    return out;
  }

  /**
   * Read-modify-write of one tenant's rules with compare-and-set; `change` returns undefined for
   * "nothing to do". Then reload locally and announce.
   */
  private async mutate(
    tenant: string,
    change: (rules: readonly TenantRule[]) => readonly TenantRule[] | undefined,
    expected?: number,
  ): Promise<{ changed: boolean; revision: number }> {
    if (!isTenantId(tenant)) throw new PolicyRuleError(`"${String(tenant)}" is not a tenant id`, { fields: [{ field: 'tenant', message: 'not a tenant id' }] });
    let revision: number;
    for (let attempt = 1; ; attempt++) {
      const current = await this.adapter.loadTenantPolicy(tenant);
      if (expected !== undefined && current.revision !== expected) {
        throw new PolicyConflictError(`the policy of ${tenant} is at revision ${current.revision}, not ${expected}: read it again and retry`);
      }
      const next = change(current.rules);
      if (next === undefined) return { changed: false, revision: current.revision };
      try {
        revision = await this.adapter.savePolicy(tenant, next, current.revision);
      } catch (err) {
        // a caller that named the revision it read is told about the race; otherwise retry
        if (err instanceof PolicyConflictError && expected === undefined && attempt < this.maxWriteAttempts) continue;
        throw err;
      }
      break;
    }
    await this.reload();
    if (this.watcher) {
      try {
        await this.watcher.update(tenant);
      } catch (err) {
        this.report(`policy change of ${tenant} was saved but not announced`, err);
      }
    }
    return { changed: true, revision };
  }

  private async build(stored: readonly TenantPolicy[]): Promise<Snapshot> {
    const p: PolicyRow[] = [...DEFAULT_TENANT_POLICY];
    const g: PolicyRow[] = [];
    const rules = new Map<string, readonly TenantRule[]>();
    for (const t of stored) {
      const valid: TenantRule[] = [];
      for (const rule of t.rules) {
        try {
          const r = normalizeRule(t.tenant, rule);
          const { ptype, row } = ruleToRow(t.tenant, r);
          (ptype === 'p' ? p : g).push(row);
          valid.push(r);
        } catch (err) {
          // a stored rule that no longer validates is skipped, loudly; it cannot be a cross-tenant
          // grant because normalizeRule pins every row to the tenant it is stored under
          this.report(`skipped an invalid stored policy rule of ${t.tenant}`, err);
        }
      }
      rules.set(t.tenant, valid);
    }
    return { enforcer: await buildEnforcer({ p, g }), rules };
  }

  private report(message: string, cause: unknown): void {
    this.onError(new PolicyReloadError(message, { cause }));
  }
}

/** Reported through `onError` for failures that have no caller. */
export class PolicyReloadError extends Error {
  override name = 'PolicyReloadError';
  readonly code = 'policy_reload_failed';
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, opts);
  }
}

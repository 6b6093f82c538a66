import { beforeEach, describe, expect, it } from '@jest/globals';
import { InMemoryPolicyAdapter, type PolicyAdapter, type TenantPolicy } from './adapter.js';
import { PolicyConflictError, PolicyRuleError } from './errors.js';
import { buildEnforcer, DEFAULT_TENANT_POLICY, PLATFORM_DOMAIN } from './model.js';
import { OPERATION_IDS, OPERATIONS, ROUTED_OPERATION_IDS, TENANT_ROLES, type OperationId, type TenantRole } from './operations.js';
import { PolicyService, type CanRequest } from './policy.service.js';
import type { TenantRule } from './rules.js';

const A = 'acme';
const B = 'globex';

/**
 * The default grants, written out by hand from API.md (independently of the catalogue's `roles`):
 * owner everything in its tenant; developer tools/agents/credentials + read; operator
 * runs/cancel/budgets + read; approver approval decisions + read; viewer read only; tenants.create
 * is the platform admin's alone.
 */
const ALL: readonly TenantRole[] = ['owner', 'developer', 'operator', 'approver', 'viewer'];
const EXPECTED: Record<OperationId, readonly TenantRole[]> = {
  'tenants.create': [],
  'apikeys.issue': ['owner'],
  'apikeys.revoke': ['owner'],
  'tools.put': ['owner', 'developer'],
  'tools.list': ALL,
  'tools.get': ALL,
  'tools.disable': ['owner', 'developer'],
  'tools.enable': ['owner', 'developer'],
  'agents.put': ['owner', 'developer'],
  'agents.get': ALL,
  'agents.list': ALL,
  'runs.start': ['owner', 'operator'],
  'runs.get': ALL,
  'runs.list': ALL,
  'runs.events': ALL,
  'runs.cancel': ['owner', 'operator'],
  'approvals.list': ALL,
  'approvals.decide': ['owner', 'approver'],
  'credentials.put': ['owner', 'developer'],
  'credentials.list': ALL,
  'budget.get': ALL,
  'budget.put': ['owner', 'operator'],
  'usage.get': ALL,
  'audit.get': ALL,
  'policy.get': ALL,
  'policy.put': ['owner'],
  'sessions.get': ALL,
  // internal, asked by the orchestrator as `agent:<name>`: every subject, for read and write tiers
  'tools.run': ALL,
};
const PLATFORM_ADMIN_OPS: readonly OperationId[] = ['tenants.create', 'apikeys.issue', 'apikeys.revoke'];

/** Benign values for the attributes an operation requires, so the table tests roles alone. */
const benignAttrs = (op: OperationId): Record<string, string> =>
  Object.fromEntries(OPERATIONS[op].requiredAttributes.map((a) => [a, a === 'riskTier' ? 'read' : 'ok']));

const ask = (svc: PolicyService, roles: string[], operation: OperationId, attrs: Record<string, string> = {}, tenant = A, keyTenant = A) =>
  svc.can({ principal: { tenant: keyTenant, roles }, tenant, operation, attrs: { ...benignAttrs(operation), ...attrs } });

describe('the operation catalogue', () => {
  it('lists every operation of the public API exactly once', () => {
    expect([...OPERATION_IDS].sort()).toEqual(Object.keys(EXPECTED).sort());
    expect(new Set(ROUTED_OPERATION_IDS.map((id) => `${OPERATIONS[id].http?.method} ${OPERATIONS[id].http?.path}`)).size).toBe(ROUTED_OPERATION_IDS.length);
    // only the internal tools.run (decided by the orchestrator) has no route
    expect(OPERATION_IDS.filter((id) => !ROUTED_OPERATION_IDS.includes(id))).toEqual(['tools.run']);
  });

  it('documents the same default grants the policy enforces', () => {
    for (const id of OPERATION_IDS) {
      expect([...OPERATIONS[id].roles].sort()).toEqual([...EXPECTED[id]].sort());
      expect(OPERATIONS[id].platformAdmin).toBe(PLATFORM_ADMIN_OPS.includes(id));
    }
  });
});

describe('PolicyService with the default policy', () => {
  let svc: PolicyService;
  beforeEach(async () => {
    svc = await PolicyService.create();
  });

  const cases = TENANT_ROLES.flatMap((role) => OPERATION_IDS.map((op) => [role, op] as const));

  it.each(cases)('decides %s × %s in its own tenant as the default grants say', async (role, op) => {
    const d = await ask(svc, [role], op);
    const expected = EXPECTED[op].includes(role);
    expect(d.allowed).toBe(expected);
    if (OPERATIONS[op].scope === 'platform') expect(d.reason).toBe('platform_only');
    else expect(d.reason).toBe(expected ? 'granted' : 'no_grant');
    if (expected) expect(d.rule).toMatchObject({ builtin: true, effect: 'allow' });
  });

  it.each(cases)('denies %s × %s in another tenant', async (role, op) => {
    const d = await ask(svc, [role], op, {}, B, A);
    expect(d.allowed).toBe(false);
    expect(d.reason).toBe(OPERATIONS[op].scope === 'platform' ? 'platform_only' : 'tenant_mismatch');
  });

  it.each(OPERATION_IDS)('lets the platform admin perform %s only if it is a platform-admin operation', async (op) => {
    const d = await svc.can({ principal: { platformAdmin: true }, tenant: op === 'tenants.create' ? undefined : A, operation: op, attrs: benignAttrs(op) });
    expect(d.allowed).toBe(PLATFORM_ADMIN_OPS.includes(op));
    expect(d.scope).toBe('platform');
    expect(d.reason).toBe(PLATFORM_ADMIN_OPS.includes(op) ? 'granted' : 'no_grant');
  });

  it('explains a decision with the rule and the role it matched through', async () => {
    const d = await ask(svc, ['viewer', 'developer'], 'tools.put', { riskTier: 'write' });
    expect(d).toMatchObject({ allowed: true, reason: 'granted', via: 'developer', operation: 'tools.put', tenant: A });
    expect(d.rule).toEqual({ subject: 'developer', domain: '*', operation: 'tools.*', access: '*', when: '*', effect: 'allow', builtin: true });
    expect(d.explanation).toContain('tools.put granted to developer');
  });

  it('denies an unknown operation, a key without roles and malformed input', async () => {
    expect((await svc.can({ principal: { tenant: A, roles: ['owner'] }, tenant: A, operation: 'runs.delete' })).reason).toBe('unknown_operation');
    expect((await svc.can({ principal: { tenant: A, roles: [] }, tenant: A, operation: 'runs.get' })).reason).toBe('no_grant');
    expect((await svc.can({ principal: { tenant: A, roles: ['owner'] }, tenant: 'Not.A.Tenant', operation: 'runs.get' })).reason).toBe('invalid_request');
    expect((await svc.can({ principal: { tenant: A, roles: ['own er'] }, tenant: A, operation: 'runs.get' })).reason).toBe('invalid_request');
    expect((await svc.can({ principal: { tenant: A, roles: ['owner'] }, operation: 'runs.get' })).reason).toBe('invalid_request');
    expect((await ask(svc, ['owner'], 'tools.put', { riskTier: 'dangerous' })).reason).toBe('invalid_request');
    expect((await ask(svc, ['owner'], 'runs.start', { budgetState: 'empty' })).reason).toBe('invalid_request');
  });

  it('fails closed when an operation is asked for without an attribute it is decided on', async () => {
    const d = await svc.can({ principal: { tenant: A, roles: ['owner'] }, tenant: A, operation: 'runs.start', attrs: {} });
    expect(d).toMatchObject({ allowed: false, reason: 'missing_attribute' });
    expect(d.explanation).toContain('budgetState');
    const t = await svc.can({ principal: { tenant: A, roles: ['owner'] }, tenant: A, operation: 'tools.put', attrs: { riskTier: undefined } });
    expect(t.reason).toBe('missing_attribute');
  });

  it('refuses runs.start to every role while the budget is exhausted, and allows it again when it is not', async () => {
    for (const role of ['owner', 'operator'] as const) {
      const d = await ask(svc, [role], 'runs.start', { budgetState: 'exhausted' });
      expect(d).toMatchObject({ allowed: false, reason: 'denied_by_rule' });
      expect(d.rule).toMatchObject({ subject: '*', operation: 'runs.start', when: 'budgetState=exhausted', effect: 'deny', builtin: true });
      expect((await ask(svc, [role], 'runs.start', { budgetState: 'low' })).allowed).toBe(true);
    }
    expect((await ask(svc, ['operator'], 'runs.cancel', { budgetState: 'exhausted' })).allowed).toBe(true);
  });
});

describe('tenant rules', () => {
  let svc: PolicyService;
  const denyWriteTools: TenantRule = { kind: 'permission', subject: 'developer', operation: 'tools.put', when: 'riskTier=write|irreversible', effect: 'deny' };
  beforeEach(async () => {
    svc = await PolicyService.create();
  });

  it('let a tenant deny write tools to a role: deny beats the default allow', async () => {
    expect(await svc.addTenantRule(A, denyWriteTools)).toBe(true);
    expect((await ask(svc, ['developer'], 'tools.put', { riskTier: 'read' })).allowed).toBe(true);
    for (const tier of ['write', 'irreversible']) {
      const d = await ask(svc, ['developer'], 'tools.put', { riskTier: tier });
      expect(d).toMatchObject({ allowed: false, reason: 'denied_by_rule', via: 'developer' });
      expect(d.rule).toMatchObject({ domain: A, builtin: false, when: 'riskTier=write|irreversible' });
    }
    expect((await ask(svc, ['owner'], 'tools.put', { riskTier: 'irreversible' })).allowed).toBe(true);
    // another tenant's developers are untouched
    const other = await svc.can({ principal: { tenant: B, roles: ['developer'] }, tenant: B, operation: 'tools.put', attrs: { riskTier: 'write' } });
    expect(other.allowed).toBe(true);
  });

  it('applies a deny to a key holding the denied role even when another of its roles allows', async () => {
    await svc.addTenantRule(A, denyWriteTools);
    const d = await ask(svc, ['owner', 'developer'], 'tools.put', { riskTier: 'write' });
    expect(d).toMatchObject({ allowed: false, reason: 'denied_by_rule', via: 'developer' });
  });

  it('let a tenant tighten runs.start on budget and risk tier for one role', async () => {
    await svc.addTenantRule(A, { kind: 'permission', subject: 'operator', operation: 'runs.start', when: 'budgetState!=ok', effect: 'deny' });
    await svc.addTenantRule(A, { kind: 'permission', subject: 'operator', operation: 'runs.*', access: 'write', when: 'riskTier=irreversible', effect: 'deny' });
    expect((await ask(svc, ['operator'], 'runs.start', { budgetState: 'ok' })).allowed).toBe(true);
    expect((await ask(svc, ['operator'], 'runs.start', { budgetState: 'low' })).reason).toBe('denied_by_rule');
    expect((await ask(svc, ['operator'], 'runs.start', { budgetState: 'ok', riskTier: 'irreversible' })).reason).toBe('denied_by_rule');
    expect((await ask(svc, ['operator'], 'runs.get', { riskTier: 'irreversible' })).allowed).toBe(true);
    expect((await ask(svc, ['owner'], 'runs.start', { budgetState: 'low', riskTier: 'irreversible' })).allowed).toBe(true);
  });

  it('let a tenant define a role that inherits a built-in one, inside that tenant only', async () => {
    await svc.addTenantRule(A, { kind: 'role', subject: 'release-manager', role: 'operator' });
    expect((await ask(svc, ['release-manager'], 'runs.start', { budgetState: 'ok' })).allowed).toBe(true);
    expect((await ask(svc, ['release-manager'], 'tools.put', { riskTier: 'read' })).allowed).toBe(false);
    const elsewhere = await svc.can({ principal: { tenant: B, roles: ['release-manager'] }, tenant: B, operation: 'runs.get' });
    expect(elsewhere.reason).toBe('no_grant');
  });

  it('grant a role to one key through its subject id', async () => {
    await svc.addTenantRule(A, { kind: 'role', subject: 'key:k1', role: 'approver' });
    const k1 = await svc.can({ principal: { tenant: A, roles: ['viewer'], subject: 'key:k1' }, tenant: A, operation: 'approvals.decide', attrs: { riskTier: 'irreversible' } });
    expect(k1).toMatchObject({ allowed: true, via: 'key:k1' });
    const k2 = await svc.can({ principal: { tenant: A, roles: ['viewer'], subject: 'key:k2' }, tenant: A, operation: 'approvals.decide', attrs: { riskTier: 'irreversible' } });
    expect(k2.allowed).toBe(false);
  });

  it('are removed again, and duplicates are not stored twice', async () => {
    expect(await svc.addTenantRule(A, denyWriteTools)).toBe(true);
    expect(await svc.addTenantRule(A, { ...denyWriteTools, when: ' riskTier = write | irreversible ' })).toBe(false);
    expect(svc.tenantRules(A)).toHaveLength(1);
    expect((await ask(svc, ['developer'], 'tools.put', { riskTier: 'write' })).allowed).toBe(false);
    expect(await svc.removeTenantRule(A, denyWriteTools)).toBe(true);
    expect(await svc.removeTenantRule(A, denyWriteTools)).toBe(false);
    expect((await ask(svc, ['developer'], 'tools.put', { riskTier: 'write' })).allowed).toBe(true);
  });

  it('are replaced as a whole by policy.put, every rule validated first', async () => {
    await svc.addTenantRule(A, denyWriteTools);
    const next: TenantRule[] = [{ kind: 'permission', subject: 'viewer', operation: 'runs.cancel', effect: 'allow' }];
    await svc.replaceTenantRules(A, next);
    expect(svc.tenantRules(A)).toEqual([{ kind: 'permission', subject: 'viewer', operation: 'runs.cancel', access: '*', when: '*', effect: 'allow' }]);
    expect((await ask(svc, ['viewer'], 'runs.cancel')).allowed).toBe(true);
    expect((await ask(svc, ['developer'], 'tools.put', { riskTier: 'write' })).allowed).toBe(true);
    const bad = svc.replaceTenantRules(A, [...next, { kind: 'permission', subject: 'viewer', operation: 'runs.nuke', effect: 'allow' }]);
    await expect(bad).rejects.toThrow(PolicyRuleError);
    await expect(bad).rejects.toMatchObject({ code: 'invalid_argument', extra: { fields: [{ field: 'rules[1].operation' }] } });
    expect(svc.tenantRules(A)).toHaveLength(1);
  });

  it.each<[string, string, TenantRule]>([
    ['a platform operation', A, { kind: 'permission', subject: 'owner', operation: 'tenants.create', effect: 'allow' }],
    ['the platform resource', A, { kind: 'permission', subject: 'owner', operation: 'tenants.*', effect: 'allow' }],
    ['the platform domain', PLATFORM_DOMAIN, { kind: 'permission', subject: 'owner', operation: '*', effect: 'allow' }],
    ['a wildcard tenant', '*', { kind: 'permission', subject: 'owner', operation: '*', effect: 'allow' }],
    ['an unknown operation', A, { kind: 'permission', subject: 'owner', operation: 'runs.nuke', effect: 'allow' }],
    ['a malformed condition', A, { kind: 'permission', subject: 'owner', operation: 'runs.start', when: 'budget==1', effect: 'deny' }],
    ['an unknown effect', A, { kind: 'permission', subject: 'owner', operation: 'runs.start', effect: 'maybe' as 'allow' }],
    ['a wildcard role assignment', A, { kind: 'role', subject: '*', role: 'owner' }],
    ['a self-assignment', A, { kind: 'role', subject: 'owner', role: 'owner' }],
  ])('reject a rule naming %s', async (_what, tenant, rule) => {
    await expect(svc.addTenantRule(tenant, rule)).rejects.toThrow(PolicyRuleError);
  });
});

describe('tenant isolation', () => {
  let svc: PolicyService;
  beforeEach(async () => {
    svc = await PolicyService.create();
  });

  it.each(OPERATION_IDS)('never grants %s to an owner key of tenant A that names tenant B', async (op) => {
    const d = await ask(svc, ['owner'], op, {}, B, A);
    expect(d.allowed).toBe(false);
  });

  it("never grants a key of tenant A anything in B, even when B's policy links that key to owner", async () => {
    await svc.addTenantRule(B, { kind: 'role', subject: 'key:a1', role: 'owner' });
    await svc.addTenantRule(B, { kind: 'permission', subject: '*', operation: '*', effect: 'allow' });
    const d = await svc.can({ principal: { tenant: A, roles: ['owner'], subject: 'key:a1' }, tenant: B, operation: 'runs.get' });
    expect(d).toMatchObject({ allowed: false, reason: 'tenant_mismatch' });
  });

  it('reads a role link stored under tenant A as a statement about A only', async () => {
    await svc.addTenantRule(A, { kind: 'role', subject: 'key:b1', role: 'owner' });
    const e = await svc.can({ principal: { tenant: B, roles: [], subject: 'key:b1' }, tenant: B, operation: 'policy.put' });
    expect(e).toMatchObject({ allowed: false, reason: 'no_grant' });
  });

  it('is enforced by the Casbin model itself, not only by the service short-cut', async () => {
    const enforcer = await buildEnforcer({
      p: [...DEFAULT_TENANT_POLICY, ['*', B, '*', '*', '*', 'allow']],
      g: [['key:a1', 'owner', B]],
    });
    const own = await enforcer.enforce({ id: 'owner', tenant: A }, A, 'runs.get', 'read', {});
    expect(own).toBe(true);
    for (const id of ['owner', 'key:a1', 'viewer']) {
      expect(await enforcer.enforce({ id, tenant: A }, B, 'runs.get', 'read', {})).toBe(false);
    }
    // the built-in any-tenant grants never reach the platform domain
    expect(await enforcer.enforce({ id: 'owner', tenant: PLATFORM_DOMAIN }, PLATFORM_DOMAIN, 'tenants.create', 'write', {})).toBe(false);
    expect(await enforcer.enforce({ id: 'owner', tenant: '*' }, '*', 'runs.get', 'read', {})).toBe(false);
  });

  it('keeps the platform admin out of tenant grants: it has no tenant role anywhere', async () => {
    const d = await svc.can({ principal: { platformAdmin: true }, tenant: A, operation: 'runs.get' });
    expect(d).toMatchObject({ allowed: false, reason: 'no_grant', scope: 'platform' });
    const t = await svc.can({ principal: { tenant: A, roles: ['owner'] }, tenant: A, operation: 'tenants.create' });
    expect(t).toMatchObject({ allowed: false, reason: 'platform_only' });
  });
});

describe('policy persistence', () => {
  it('loads stored rules at start and skips (and reports) a stored rule that no longer validates', async () => {
    const adapter = new InMemoryPolicyAdapter();
    await adapter.savePolicy(A, [
      { kind: 'permission', subject: 'developer', operation: 'tools.put', when: 'riskTier=write', effect: 'deny' },
      { kind: 'permission', subject: 'owner', operation: 'tenants.create', effect: 'allow' },
    ], 0);
    const errors: Error[] = [];
    const svc = await PolicyService.create({ adapter, onError: (e) => errors.push(e) });
    expect((await ask(svc, ['developer'], 'tools.put', { riskTier: 'write' })).allowed).toBe(false);
    expect(svc.tenantRules(A)).toHaveLength(1);
    expect(errors).toHaveLength(1);
    expect(errors[0].name).toBe('PolicyReloadError');
  });

  it('retries a compare-and-set write that lost a race, so concurrent writers both land', async () => {
    const adapter = new InMemoryPolicyAdapter();
    const one = await PolicyService.create({ adapter });
    const two = await PolicyService.create({ adapter });
    await Promise.all([
      one.addTenantRule(A, { kind: 'role', subject: 'key:x', role: 'viewer' }),
      two.addTenantRule(A, { kind: 'role', subject: 'key:y', role: 'viewer' }),
    ]);
    expect((await adapter.loadTenantPolicy(A)).rules).toHaveLength(2);
  });

  it('gives up with PolicyConflictError after the configured number of lost races', async () => {
    const inner = new InMemoryPolicyAdapter();
    let saves = 0;
    const alwaysLoses: PolicyAdapter = {
      loadPolicy: () => inner.loadPolicy(),
      loadTenantPolicy: (t: string): Promise<TenantPolicy> => inner.loadTenantPolicy(t),
      savePolicy: async () => {
        saves++;
        throw new PolicyConflictError('someone else won');
      },
    };
    const svc = await PolicyService.create({ adapter: alwaysLoses, maxWriteAttempts: 3 });
    await expect(svc.addTenantRule(A, { kind: 'role', subject: 'key:x', role: 'viewer' })).rejects.toMatchObject({ name: 'PolicyConflictError', code: 'conflict' });
    expect(saves).toBe(3);
  });

  it('rejects a write with a stale revision in the in-memory adapter', async () => {
    const adapter = new InMemoryPolicyAdapter();
    const rev = await adapter.savePolicy(A, [], 0);
    await adapter.savePolicy(A, [{ kind: 'role', subject: 'k', role: 'viewer' }], rev);
    await expect(adapter.savePolicy(A, [], rev)).rejects.toThrow(PolicyConflictError);
  });

  it('keeps deciding on the previous policy while a reload is in flight', async () => {
    const inner = new InMemoryPolicyAdapter();
    let release: () => void = () => undefined;
    let slow = false;
    const adapter: PolicyAdapter = {
      loadPolicy: async () => {
        if (slow) await new Promise<void>((r) => { release = r; });
        return inner.loadPolicy();
      },
      loadTenantPolicy: (t) => inner.loadTenantPolicy(t),
      savePolicy: (t, r, v) => inner.savePolicy(t, r, v),
    };
    const svc = await PolicyService.create({ adapter });
    slow = true;
    const reloading = svc.reload();
    const req: CanRequest = { principal: { tenant: A, roles: ['viewer'] }, tenant: A, operation: 'runs.get' };
    expect((await svc.can(req)).allowed).toBe(true);
    release();
    await reloading;
    expect((await svc.can(req)).allowed).toBe(true);
  });
});

describe('change announcements', () => {
  class FakeWatcher {
    callback: () => void = () => undefined;
    announced: (string | undefined)[] = [];
    setUpdateCallback(cb: () => void): void {
      this.callback = cb;
    }
    async update(tenant?: string): Promise<boolean> {
      this.announced.push(tenant);
      return true;
    }
  }

  it('announce each saved change with its tenant, and not a change that changed nothing', async () => {
    const watcher = new FakeWatcher();
    const svc = await PolicyService.create({ watcher });
    await svc.addTenantRule(A, { kind: 'role', subject: 'key:x', role: 'viewer' });
    await svc.addTenantRule(A, { kind: 'role', subject: 'key:x', role: 'viewer' });
    await svc.removeTenantRule(B, { kind: 'role', subject: 'key:x', role: 'viewer' });
    expect(watcher.announced).toEqual([A]);
  });

  it('coalesce a burst into few reloads, and keep the previous policy when a reload fails', async () => {
    const inner = new InMemoryPolicyAdapter();
    await inner.savePolicy(A, [{ kind: 'permission', subject: 'viewer', operation: 'runs.get', effect: 'deny' }], 0);
    let loads = 0;
    let failing = false;
    const adapter: PolicyAdapter = {
      loadPolicy: async () => {
        loads++;
        await new Promise((r) => setImmediate(r));
        if (failing) throw new Error('store down');
        return inner.loadPolicy();
      },
      loadTenantPolicy: (t) => inner.loadTenantPolicy(t),
      savePolicy: (t, r, v) => inner.savePolicy(t, r, v),
    };
    const watcher = new FakeWatcher();
    const errors: Error[] = [];
    const svc = await PolicyService.create({ adapter, watcher, onError: (e) => errors.push(e) });
    const req: CanRequest = { principal: { tenant: A, roles: ['viewer'] }, tenant: A, operation: 'runs.get' };
    expect((await svc.can(req)).allowed).toBe(false);

    loads = 0;
    for (let i = 0; i < 20; i++) watcher.callback();
    for (let i = 0; i < 100 && loads < 2; i++) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    expect(loads).toBe(2);

    failing = true;
    watcher.callback();
    for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((r) => setImmediate(r));
    expect(errors[0]).toMatchObject({ name: 'PolicyReloadError', cause: { message: 'store down' } });
    expect((await svc.can(req)).allowed).toBe(false);
  });
});

describe('tools.run: whether a run calls a tool unattended', () => {
  const run = (svc: PolicyService, tenant: string, riskTier: string, tool = 'charge', agent = 'agent:billing') =>
    svc.can({ principal: { tenant, roles: [], subject: agent }, tenant, operation: 'tools.run', attrs: { riskTier, tool } });

  it('lets read and write tools run by default, never irreversible ones, and insists on the tier', async () => {
    const svc = await PolicyService.create();
    expect((await run(svc, A, 'read')).allowed).toBe(true);
    expect((await run(svc, A, 'write')).allowed).toBe(true);
    expect(await run(svc, A, 'irreversible')).toMatchObject({ allowed: false, reason: 'no_grant' });
    const missing = await svc.can({ principal: { tenant: A, roles: [], subject: 'agent:billing' }, tenant: A, operation: 'tools.run' });
    expect(missing).toMatchObject({ allowed: false, reason: 'missing_attribute' });
  });

  it("is refused for write tools of the tenant whose rule denies it, for every agent or one agent or one tool", async () => {
    const svc = await PolicyService.create();
    await svc.addTenantRule(A, { kind: 'permission', subject: '*', operation: 'tools.run', when: 'riskTier=write', effect: 'deny' });
    expect(await run(svc, A, 'write')).toMatchObject({ allowed: false, reason: 'denied_by_rule' });
    expect((await run(svc, A, 'read')).allowed).toBe(true);
    expect((await run(svc, B, 'write')).allowed).toBe(true);

    await svc.replaceTenantRules(B, [
      { kind: 'permission', subject: 'agent:billing', operation: 'tools.run', when: 'riskTier=write', effect: 'deny' },
      { kind: 'permission', subject: '*', operation: 'tools.run', when: 'tool=wire', effect: 'deny' },
    ]);
    expect((await run(svc, B, 'write', 'charge', 'agent:billing')).allowed).toBe(false);
    expect((await run(svc, B, 'write', 'charge', 'agent:support')).allowed).toBe(true);
    expect((await run(svc, B, 'read', 'wire', 'agent:support')).allowed).toBe(false);
  });
});

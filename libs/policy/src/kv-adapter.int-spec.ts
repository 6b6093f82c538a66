import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { PolicyConflictError } from './errors.js';
import { KvPolicyAdapter } from './kv-adapter.js';
import { NatsPolicyWatcher } from './nats-watcher.js';
import { PolicyService, type CanRequest } from './policy.service.js';
import type { TenantRule } from './rules.js';

async function eventually(probe: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const deny: TenantRule = { kind: 'permission', subject: 'developer', operation: 'tools.put', when: 'riskTier=irreversible', effect: 'deny' };
const irreversibleTool: CanRequest = { principal: { tenant: 'acme', roles: ['developer'] }, tenant: 'acme', operation: 'tools.put', attrs: { riskTier: 'irreversible' } };

describe('KvPolicyAdapter (JetStream KV)', () => {
  let srv: NatsServerHandle;
  let ncs: NatsConnection[] = [];
  let bucket = 0;
  let name: string;

  beforeAll(async () => { srv = await startNatsServer(); });
  afterAll(async () => { await srv.stop(); });
  beforeEach(() => { name = `policy_test_${++bucket}`; });
  afterEach(async () => {
    for (const nc of ncs) await nc.close();
    ncs = [];
  });

  const conn = async () => {
    const nc = await connect({ servers: srv.url });
    ncs.push(nc);
    return nc;
  };

  it('stores one JSON document per tenant and compares-and-sets on the KV revision', async () => {
    const nc = await conn();
    const a = await KvPolicyAdapter.open(nc, { bucket: name });
    expect(await a.loadTenantPolicy('acme')).toEqual({ tenant: 'acme', rules: [], revision: 0 });
    const r1 = await a.savePolicy('acme', [deny], 0);
    expect(r1).toBeGreaterThan(0);
    await expect(a.savePolicy('acme', [], 0)).rejects.toBeInstanceOf(PolicyConflictError);
    const r2 = await a.savePolicy('acme', [], r1);
    await expect(a.savePolicy('acme', [deny], r1)).rejects.toBeInstanceOf(PolicyConflictError);
    await a.savePolicy('globex', [deny], 0);
    expect(await a.loadTenantPolicy('acme')).toEqual({ tenant: 'acme', rules: [], revision: r2 });
    const all = await a.loadPolicy();
    expect(all.map((t) => t.tenant).sort()).toEqual(['acme', 'globex']);
    // readable with the NATS CLI: plain JSON under <tenant>.rules
    const kv = await new Kvm(nc).open(name);
    expect((await kv.get('globex.rules'))?.json()).toMatchObject({ rules: [deny] });
  });

  it('reaches every other gateway instance within a second, through KV and svc.v1.policy.changed', async () => {
    const instance = async () => {
      const nc = await conn();
      const watcher = await NatsPolicyWatcher.create(nc);
      return PolicyService.create({ adapter: await KvPolicyAdapter.open(nc, { bucket: name }), watcher });
    };
    const [one, two, three] = [await instance(), await instance(), await instance()];
    expect((await two.can(irreversibleTool)).allowed).toBe(true);
    const revision = await one.replaceTenantRules('acme', [deny]);
    expect((await one.can(irreversibleTool)).reason).toBe('denied_by_rule');
    for (const other of [two, three]) {
      const elapsed = await eventually(async () => !(await other.can(irreversibleTool)).allowed, 5_000);
      expect(elapsed).toBeLessThan(1_000);
    }
    expect(await three.storedTenantPolicy('acme')).toMatchObject({ revision, rules: [{ ...deny, access: '*' }] });
    // a writer that read an older revision is refused instead of silently overwriting
    await expect(two.replaceTenantRules('acme', [], { expectedRevision: revision - 1 })).rejects.toBeInstanceOf(PolicyConflictError);
    await two.replaceTenantRules('acme', [], { expectedRevision: revision });
    await eventually(async () => (await one.can(irreversibleTool)).allowed, 1_000);
    for (const s of [one, two, three]) s.close();
  });
});

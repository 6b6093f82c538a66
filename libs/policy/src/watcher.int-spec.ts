import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import { InMemoryPolicyAdapter } from './adapter.js';
import { NatsPolicyWatcher, POLICY_CHANGED_SUBJECT } from './nats-watcher.js';
import { PolicyService, type CanRequest } from './policy.service.js';
import type { TenantRule } from './rules.js';

/** Polls `probe` until it returns true or `timeoutMs` passes; returns the elapsed milliseconds. */
async function eventually(probe: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const denyWriteTools: TenantRule = { kind: 'permission', subject: 'developer', operation: 'tools.put', when: 'riskTier=write|irreversible', effect: 'deny' };
const writeTool: CanRequest = { principal: { tenant: 'acme', roles: ['developer'] }, tenant: 'acme', operation: 'tools.put', attrs: { riskTier: 'write' } };

describe('policy changes over NATS', () => {
  let srv: NatsServerHandle;
  let ncs: NatsConnection[] = [];
  let watchers: NatsPolicyWatcher[] = [];
  let adapter: InMemoryPolicyAdapter;
  let one: PolicyService;
  let two: PolicyService;
  let errors: Error[];

  beforeAll(async () => {
    srv = await startNatsServer();
  });
  afterAll(async () => {
    await srv.stop();
  });

  const instance = async (): Promise<PolicyService> => {
    const nc = await connect({ servers: srv.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
    ncs.push(nc);
    const watcher = await NatsPolicyWatcher.create(nc);
    watchers.push(watcher);
    return PolicyService.create({ adapter, watcher, onError: (e) => errors.push(e) });
  };

  beforeEach(async () => {
    adapter = new InMemoryPolicyAdapter();
    errors = [];
    one = await instance();
    two = await instance();
  });
  afterEach(async () => {
    one.close();
    two.close();
    for (const w of watchers) w.close();
    for (const nc of ncs) await nc.close();
    ncs = [];
    watchers = [];
  });

  it('reaches the other instance within a second when one instance adds a rule', async () => {
    expect((await two.can(writeTool)).allowed).toBe(true);
    await one.addTenantRule('acme', denyWriteTools);
    expect((await one.can(writeTool)).allowed).toBe(false);
    const elapsed = await eventually(async () => !(await two.can(writeTool)).allowed, 5_000);
    expect(elapsed).toBeLessThan(1_000);
    expect((await two.can(writeTool)).reason).toBe('denied_by_rule');
    expect(errors).toEqual([]);
  });

  it('reaches the first instance when the other removes the rule again', async () => {
    await one.addTenantRule('acme', denyWriteTools);
    await eventually(async () => !(await two.can(writeTool)).allowed, 5_000);
    await two.removeTenantRule('acme', denyWriteTools);
    const elapsed = await eventually(async () => (await one.can(writeTool)).allowed, 5_000);
    expect(elapsed).toBeLessThan(1_000);
  });

  it('announces on svc.v1.policy.changed with the origin instance and the tenant', async () => {
    const nc = await connect({ servers: srv.url });
    ncs.push(nc);
    const seen: unknown[] = [];
    nc.subscribe(POLICY_CHANGED_SUBJECT, { callback: (_err, msg) => { seen.push(msg.json()); } });
    await nc.flush();
    await one.addTenantRule('acme', denyWriteTools);
    await eventually(async () => seen.length > 0, 5_000);
    expect(seen[0]).toEqual({ origin: watchers[0].instanceId, tenant: 'acme' });
  });

  it('works as a plain Casbin watcher: update() runs the other side’s callback, not its own', async () => {
    const [a, b] = watchers;
    let calledA = 0;
    let calledB = 0;
    a.setUpdateCallback(() => { calledA++; });
    b.setUpdateCallback(() => { calledB++; });
    // update() ends with a flush: the server has echoed a's own announcement back to a by then
    expect(await a.update()).toBe(true);
    expect(calledA).toBe(0);
    await eventually(async () => calledB === 1, 5_000);
    expect(await b.update()).toBe(true);
    expect(calledB).toBe(1);
    await eventually(async () => calledA === 1, 5_000);
  });

  it('reloads after a reconnect, catching up on announcements lost while disconnected', async () => {
    // a change that reaches storage but whose announcement is lost
    await adapter.savePolicy('acme', [denyWriteTools], 0);
    expect((await two.can(writeTool)).allowed).toBe(true);
    await srv.restart();
    await eventually(async () => !(await two.can(writeTool)).allowed, 10_000);
    await eventually(async () => !(await one.can(writeTool)).allowed, 10_000);
  });
});

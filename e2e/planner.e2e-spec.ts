import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { servePlanner, type PlannerServer } from '#libs/sdk';
import { ROOT } from '../scripts/mesh.mjs';
import { eventually, newTenant, startTestMesh, waitForRun, type Api, type Mesh } from './support/harness.js';

/** The example planner as built by `npx tsc -p tsconfig.build.json`. */
const MAIN = join(ROOT, 'dist/examples/config-assistant/main.js');

// a configuration store per session: the tool-runner's session memory builtins
const CONFIG_GET = {
  version: '1', riskTier: 'read', description: 'read a configuration value', transport: { kind: 'builtin', name: 'memory_get' },
  inputSchema: { type: 'object', required: ['key'], properties: { key: { type: 'string' } } },
};
const CONFIG_SET = {
  version: '1', riskTier: 'write', description: 'write a configuration value', transport: { kind: 'builtin', name: 'memory_put' },
  inputSchema: { type: 'object', required: ['key', 'value'], properties: { key: { type: 'string' }, value: {} } },
};

/** A planner process: its output lines, parsed. */
class PlannerProcess {
  readonly lines: Array<Record<string, unknown>> = [];
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try { this.lines.push(JSON.parse(line) as Record<string, unknown>); } catch { this.lines.push({ msg: line }); }
      }
    });
    child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
  }

  /** Decisions this instance made, by run. */
  decided(): string[] {
    return this.lines.filter((l) => l.msg === 'decided').map((l) => String(l.run));
  }

  serving(): Promise<true> {
    return eventually(async () => this.lines.some((l) => l.msg === 'serving') || (this.child.exitCode !== null ? Promise.reject(new Error(`exited: ${this.stderr}`)) : false), 'the planner to serve', 15_000);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}

describe('bring your own planner: the config-assistant example as its own process', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let t: string;
  let api: Api;
  const processes: PlannerProcess[] = [];
  const inProcess: PlannerServer[] = [];

  function startPlanner(...args: string[]): PlannerProcess {
    const child = spawn(process.execPath, [MAIN, '--nats', mesh.natsUrl, ...args], {
      cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const p = new PlannerProcess(child);
    processes.push(p);
    return p;
  }

  async function start(agent: string, input: unknown, sessionId?: string): Promise<string> {
    const r = await api('POST', `/v1/tenants/${t}/runs`, { agent, input, ...(sessionId ? { sessionId } : {}) });
    expect(r.status).toBe(201);
    return r.body.id as string;
  }

  async function turn(agent: string, sessionId: string, input: unknown) {
    const run = await waitForRun(api, t, await start(agent, input, sessionId), 30_000);
    expect(run).toMatchObject({ status: 'completed' });
    return run;
  }

  async function journalTypes(runId: string): Promise<string[]> {
    const r = await fetch(`${mesh.gatewayUrl}/v1/tenants/${t}/runs/${runId}/events`, { headers: { authorization: `Bearer ${ownerKey}` } });
    const text = await r.text();
    return [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
  }
  let ownerKey: string;

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npx tsc -p tsconfig.build.json first`);
    mesh = await startTestMesh({ AGENTMESH_PLANNER_TIMEOUT: '5s' });
    const tenant = await newTenant(mesh, 'byop');
    t = tenant.id; api = tenant.owner; ownerKey = tenant.ownerKey;
    expect((await api('PUT', `/v1/tenants/${t}/tools/config_get`, CONFIG_GET)).status).toBe(201);
    expect((await api('PUT', `/v1/tenants/${t}/tools/config_set`, CONFIG_SET)).status).toBe(201);
    const agent = (planner: string, tools = ['config_get', 'config_set']) => ({ version: '1', planner, instructions: 'Confirm before writing.', tools, limits: { maxSteps: 10 } });
    expect((await api('PUT', `/v1/tenants/${t}/agents/cfg`, agent('config-assistant'))).status).toBe(201);
    expect((await api('PUT', `/v1/tenants/${t}/agents/cfg-readonly`, agent('config-assistant', ['config_get']))).status).toBe(201);
    expect((await api('PUT', `/v1/tenants/${t}/agents/cfg-pool`, agent('cfg-pool'))).status).toBe(201);
    expect((await api('PUT', `/v1/tenants/${t}/agents/cfg-next`, agent('cfg-next'))).status).toBe(201);
  });

  afterAll(async () => {
    for (const s of inProcess) await s.close().catch(() => undefined);
    for (const p of processes) await p.kill();
    await mesh?.cleanup();
  });

  it('keeps a run waiting while the planner is down and finishes it when the planner process starts', async () => {
    const id = await start('cfg', 'set timeout to 30', 'sess-down');
    await new Promise((r) => setTimeout(r, 4000)); // several asks with no instance up
    const waiting = await api('GET', `/v1/tenants/${t}/runs/${id}`);
    expect(['queued', 'running']).toContain(waiting.body.status);
    expect(waiting.body.error ?? null).toBeNull();

    const planner = startPlanner();
    await planner.serving();
    const run = await waitForRun(api, t, id, 30_000);
    expect(run).toMatchObject({
      status: 'completed', steps: 1,
      output: { state: 'awaiting_confirmation', change: { key: 'timeout', value: 30, previous: null } },
    });
    expect(planner.decided()).toContain(id);
  });

  it('drives a multi-turn session through confirm-before-write: propose, confirm, apply, and reads it back', async () => {
    const s = 'sess-multi';
    const proposed = await turn('cfg', s, { text: 'set max_connections to 200' });
    expect(proposed).toMatchObject({ steps: 1, output: { state: 'awaiting_confirmation', change: { key: 'max_connections', value: 200 } } });
    const proposalJournal = await journalTypes(proposed.id);
    expect(proposalJournal.filter((e) => e === 'tool.called')).toHaveLength(1); // the read, no write

    // an unrelated turn: the proposal is kept in session memory across turns
    expect(await turn('cfg', s, 'what happens now?')).toMatchObject({ steps: 0, output: { state: 'awaiting_confirmation', message: expect.stringMatching(/^A change is waiting/) } });

    const applied = await turn('cfg', s, 'yes');
    expect(applied).toMatchObject({ steps: 1, output: { state: 'done', change: { key: 'max_connections', value: 200 }, result: { key: 'max_connections', stored: true } } });
    expect(await journalTypes(applied.id)).toEqual(expect.arrayContaining(['planner.decided', 'llm.delta', 'tool.completed', 'run.completed']));

    // the write happened: the next proposal for the key reads it back as the current value
    expect(await turn('cfg', s, 'set max_connections to 250')).toMatchObject({ output: { change: { key: 'max_connections', value: 250, previous: 200 } } });
    expect(await turn('cfg', s, 'no')).toMatchObject({ steps: 0, output: { state: 'idle' } });
    expect(await turn('cfg', s, 'yes')).toMatchObject({ steps: 0, output: { state: 'idle', message: expect.stringContaining('no change waiting') } });

    // another session has its own pending confirmations
    expect(await turn('cfg', 'sess-other', 'yes')).toMatchObject({ output: { state: 'idle' } });
  });

  it('fails the run planner_error with the message of a planner that throws', async () => {
    const run = await waitForRun(api, t, await start('cfg-readonly', 'set timeout to 5', 'sess-ro'), 30_000);
    expect(run).toMatchObject({
      status: 'failed',
      error: { code: 'planner_error', message: 'config-assistant: agent "cfg-readonly" has no tool with risk tier "write" to apply changes with' },
    });
  });

  it('refuses a planner that speaks an incompatible protocol version, with a clear error', async () => {
    const planner = await servePlanner({ name: 'cfg-next', decide: (_view, ctx) => ctx.finish('never used') }, { servers: mesh.natsUrl, protocol: 'planner.v2' });
    inProcess.push(planner);
    const run = await waitForRun(api, t, await start('cfg-next', 'set a to 1', 'sess-v2'), 30_000);
    expect(run).toMatchObject({ status: 'failed', error: { code: 'planner_error' } });
    expect(run.error.message).toBe('planner "cfg-next" speaks planner.v2, which this orchestrator (planner.v1) does not accept: deploy a planner built on a compatible SDK');
  });

  it('shares the work between two instances in one queue group, and goes on with one killed', async () => {
    const a = startPlanner('--name', 'cfg-pool');
    const b = startPlanner('--name', 'cfg-pool');
    await Promise.all([a.serving(), b.serving()]);
    const first = await Promise.all(Array.from({ length: 8 }, (_, i) => start('cfg-pool', `set k${i} to ${i}`, `pool-${i}`)));
    for (const id of first) expect(await waitForRun(api, t, id, 30_000)).toMatchObject({ status: 'completed', output: { state: 'awaiting_confirmation' } });
    // 16 decisions over two instances: both took some
    expect(a.decided().length).toBeGreaterThan(0);
    expect(b.decided().length).toBeGreaterThan(0);
    expect(new Set([...a.decided(), ...b.decided()])).toEqual(new Set(first));

    await a.kill('SIGKILL');
    const before = b.decided().length;
    const second = await Promise.all(Array.from({ length: 4 }, (_, i) => start('cfg-pool', 'yes', `pool-${i}`)));
    for (const id of second) expect(await waitForRun(api, t, id, 30_000)).toMatchObject({ status: 'completed', output: { state: 'done' } });
    expect(b.decided().length).toBeGreaterThanOrEqual(before + 8);
  });
});

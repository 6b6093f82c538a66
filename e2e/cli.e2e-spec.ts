import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { servePlanner, type PlannerServer } from '#libs/sdk';
import { runCli } from '../apps/cli/src/cli.js';
import { createConfigAssistant } from '../examples/config-assistant/assistant.js';
import { memoryIO } from '../apps/cli/src/test/fakes.js';
import { freePort } from '../scripts/mesh.mjs';
import { newTenant, startTestMesh, type Mesh } from './support/harness.js';

/** Recorded journals for the replay regression spec (apps/cli/src/replay-fixtures.spec.ts). */
const FIXTURES = fileURLToPath(new URL('../apps/cli/src/fixtures/', import.meta.url));

const ECHO = { version: '1', description: 'returns its arguments', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'builtin', name: 'echo' } };
const TRANSFORM = { version: '1', description: 'transforms text', riskTier: 'read', inputSchema: { type: 'object', required: ['text', 'op'] }, transport: { kind: 'builtin', name: 'transform' } };
const HELLO = {
  version: '1', planner: 'graph', tools: ['echo', 'transform'], limits: { maxSteps: 10 },
  steps: [
    { id: 'greet', tool: 'echo', args: { text: 'Hello, {{input.name}}!' } },
    { id: 'shout', tool: 'transform', args: { text: '{{steps.greet.result.text}}', op: 'upper' } },
  ],
  output: { greeting: '{{steps.shout.result.text}}' },
};
const LONG = { version: '1', planner: 'graph', tools: ['echo'], limits: { maxSteps: 100 }, steps: Array.from({ length: 40 }, (_, i) => ({ id: `s${i}`, tool: 'echo', args: { i } })) };
const EXPLODE = {
  version: '1', planner: 'graph', tools: ['echo', 'transform'],
  steps: [{ id: 'greet', tool: 'echo', args: { text: 'hi' } }, { id: 'boom', tool: 'transform', args: { text: '{{steps.greet.result.text}}', op: 'explode' } }],
};

interface Journaled { seq: number; runId: string; type: string; step: number; data: Record<string, unknown> }

describe('the agentmesh CLI against a running mesh', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let dir: string;
  let env: Record<string, string>;

  /** Runs one CLI invocation in-process, as `agentmesh <argv>` would from `dir`. */
  async function am(argv: string[], extraEnv: Record<string, string> = {}) {
    const m = memoryIO({ env: { ...env, ...extraEnv }, cwd: dir });
    const code = await runCli(argv, m.io);
    return { code, out: m.stdout.text, err: m.stderr.text };
  }
  const ndjson = (text: string): Journaled[] => text.trim().split('\n').map((l) => JSON.parse(l) as Journaled);
  const record = (name: string, text: string) => {
    // Recorded once, then committed: delete a file to record it again.
    const file = join(FIXTURES, name);
    if (!existsSync(file)) { mkdirSync(FIXTURES, { recursive: true }); writeFileSync(file, text); }
  };

  beforeAll(async () => {
    mesh = await startTestMesh();
    const t = await newTenant(mesh, 'cli');
    env = { AGENTMESH_URL: mesh.gatewayUrl, AGENTMESH_API_KEY: t.ownerKey, AGENTMESH_TENANT: t.id };
    dir = mkdtempSync(join(tmpdir(), 'agentmesh-cli-e2e-'));
    for (const [f, body] of Object.entries({ 'echo.json': ECHO, 'transform.json': TRANSFORM, 'hello.json': HELLO, 'long.json': LONG, 'explode.json': EXPLODE })) {
      writeFileSync(join(dir, f), JSON.stringify(body));
    }
    writeFileSync(join(dir, 'admin.key'), `${mesh.adminKey}\n`);
  });
  afterAll(async () => {
    await mesh?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('creates a tenant with the admin key, issues a key for it and revokes it', async () => {
    const id = `cli-adm-${process.pid}`;
    const created = await am(['tenants', 'create', id, '--key-file', 'admin.key']);
    expect(created).toMatchObject({ code: 0, err: '' });
    expect(created.out).toContain(`created tenant ${id}`);
    const issued = await am(['keys', 'issue', '--roles', 'operator,viewer', '--name', 'ci', '--tenant', id, '--key-file', 'admin.key', '--json']);
    expect(issued.code).toBe(0);
    const key = JSON.parse(issued.out) as { id: string; key: string; roles: string[] };
    expect(key.roles).toEqual(['operator', 'viewer']);
    expect((await am(['runs', 'list', '--tenant', id, '--key', key.key])).code).toBe(0);
    expect(await am(['keys', 'revoke', key.id, '--tenant', id, '--key-file', 'admin.key'])).toMatchObject({ code: 0, out: `revoked key ${key.id}\n` });
    const refused = await am(['runs', 'list', '--tenant', id, '--key', key.key]);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/^error: .+ \(unauthenticated\)\n$/);
    const again = await am(['tenants', 'create', id, '--key-file', 'admin.key']);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/^error: tenant .+ already exists \(conflict\)\n$/);
  });

  it('registers tools and agents from files and shows them', async () => {
    expect(await am(['tools', 'put', 'echo', '--file', 'echo.json'])).toMatchObject({ code: 0, out: 'registered tool echo version 1\n' });
    expect(await am(['tools', 'put', 'transform', '-f', 'transform.json'])).toMatchObject({ code: 0, out: 'registered tool transform version 1\n' });
    expect(await am(['tools', 'put', 'echo', '--file', 'echo.json'])).toMatchObject({ code: 0, out: 'tool echo version 1 was already registered with this definition\n' });
    for (const [name, file] of [['hello', 'hello.json'], ['long', 'long.json'], ['explode', 'explode.json']]) {
      expect(await am(['agents', 'put', name, '--file', file])).toMatchObject({ code: 0, out: `defined agent ${name} version 1\n` });
    }
    const tools = JSON.parse((await am(['tools', 'list', '--json'])).out) as { tools: Array<{ name: string; disabled: boolean }> };
    expect(tools.tools.map((t) => [t.name, t.disabled])).toEqual([['echo', false], ['transform', false]]);
    const table = (await am(['tools', 'list'])).out.split('\n');
    expect(table[0]).toMatch(/^NAME +VERSION +RISK +TRANSPORT +STATE +CREATED$/);
    expect(table[1]).toMatch(/^echo +1 +read +builtin:echo +enabled +\d{4}-/);
    expect((await am(['tools', 'get', 'transform'])).out).toMatch(/tool: +transform/);
    expect((await am(['agents', 'list'])).out).toMatch(/hello +1 +graph +echo,transform/);
    expect(JSON.parse((await am(['agents', 'get', 'hello', '--json'])).out)).toMatchObject({ name: 'hello', versions: [{ version: '1', planner: 'graph' }] });
  });

  it('disables and enables a tool', async () => {
    expect(await am(['tools', 'disable', 'echo'])).toMatchObject({ code: 0, out: 'tool echo disabled\n' });
    expect(JSON.parse((await am(['tools', 'get', 'echo', '--json'])).out)).toMatchObject({ disabled: true });
    expect(await am(['tools', 'enable', 'echo'])).toMatchObject({ code: 0, out: 'tool echo enabled\n' });
  });

  let completedRun: string;
  let completedJournal: string;

  it('starts a run and follows it to the end with step progress', async () => {
    const r = await am(['runs', 'start', 'hello', '--input', '{"name":"Ada"}', '--follow']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    const runId = /^run (run_\w+)  agent hello@1  planner graph$/.exec(lines[0])?.[1];
    expect(runId).toBeDefined();
    completedRun = runId as string;
    expect(lines[1]).toMatch(/^ {2}step 1\/2 +echo@1 +\d+(\.\d+)? m?s +ok$/);
    expect(lines[2]).toMatch(/^ {2}step 2\/2 +transform@1 +\d+(\.\d+)? m?s +ok$/);
    expect(lines[3]).toMatch(/^completed in .+ {2}2 steps {2}cost \$0\.0000$/);
    expect(lines[4]).toBe('output: {"greeting":"HELLO, ADA!"}');
  });

  it('lists runs as one JSON document and shows one run', async () => {
    const list = await am(['runs', 'list', '--json', '--agent', 'hello']);
    expect(list.code).toBe(0);
    const doc = JSON.parse(list.out) as { runs: Array<{ id: string; status: string }>; nextCursor: string | null };
    expect(doc.runs.find((r) => r.id === completedRun)).toMatchObject({ status: 'completed' });
    const got = await am(['runs', 'get', completedRun]);
    expect(got.out).toMatch(/status: +completed/);
    expect(got.out).toContain('output:   {"greeting":"HELLO, ADA!"}');
  });

  it("prints the run's journal from the SSE stream, as lines and as NDJSON", async () => {
    const human = await am(['journal', completedRun]);
    expect(human.code).toBe(0);
    expect(human.out.trim().split('\n').map((l) => l.trim().split(/ +/)[3])).toEqual([
      'run.created', 'run.started', 'step.started', 'tool.called', 'tool.completed', 'step.started', 'tool.called', 'tool.completed', 'run.completed',
    ]);
    const machine = await am(['journal', completedRun, '--json']);
    expect(machine.code).toBe(0);
    const events = ndjson(machine.out);
    expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));
    expect(events.every((e) => e.runId === completedRun)).toBe(true);
    expect(events.at(-1)?.type).toBe('run.completed');
    completedJournal = machine.out;
    record('completed.journal.ndjson', machine.out);
  });

  it('replays a run with no divergence', async () => {
    const r = await am(['replay', completedRun]);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(new RegExp(`^no divergence: run ${completedRun}, 9 events, \\d+ engine decisions re-made \\(run completed\\)\\n$`));
    writeFileSync(join(dir, 'journal.ndjson'), completedJournal);
    expect((await am(['replay', '--from-file', 'journal.ndjson', '--json'])).code).toBe(0);
  });

  it('finds the divergence in a tampered journal and exits 1', async () => {
    const events = ndjson(completedJournal);
    const second = events.filter((e) => e.type === 'step.started')[1];
    (second.data.args as Record<string, unknown>).op = 'lower';
    writeFileSync(join(dir, 'tampered.ndjson'), events.map((e) => JSON.stringify(e)).join('\n'));
    const r = await am(['replay', '--from-file', 'tampered.ndjson']);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`divergence at journal seq ${second.seq} (step 2) of run ${completedRun}`);
    expect(r.out).toMatch(/recorded: +step\.started .*"op":"lower"/);
    expect(r.out).toMatch(/decided: +step\.started .*"op":"upper"/);
    const j = await am(['replay', '--from-file', 'tampered.ndjson', '--json']);
    expect(JSON.parse(j.out)).toMatchObject({ ok: false, divergence: { seq: second.seq, recorded: { type: 'step.started' }, decided: { type: 'step.started' } } });
  });

  it('cancels a run; tailing it exits 1 and its journal still replays', async () => {
    const started = await am(['runs', 'start', 'long', '--json']);
    expect(started.code).toBe(0);
    const runId = (JSON.parse(started.out) as { id: string }).id;
    const cancel = await am(['runs', 'cancel', runId, '--reason', 'operator said so']);
    expect(cancel).toMatchObject({ code: 0, out: expect.stringContaining(`cancel requested for run ${runId}`) });
    const tail = await am(['runs', 'tail', runId]);
    expect(tail.code).toBe(1);
    expect(tail.out).toMatch(/^cancelled in .+ after \d+ steps?/m);
    const again = await am(['runs', 'cancel', runId]);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/^error: run .+ already ended \(cancelled\) \(conflict\)\n$/);
    const nd = await am(['runs', 'tail', runId, '--json']);
    expect(nd.code).toBe(1);
    expect(ndjson(nd.out).at(-1)?.type).toBe('run.cancelled');
    record('cancelled.journal.ndjson', nd.out);
    expect((await am(['replay', runId])).code).toBe(0);
  });

  it('follows a run whose tool fails and exits 1', async () => {
    const r = await am(['runs', 'start', 'explode', '--follow']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/step 2\/2 +transform@1 .* failed {2}[a-z_]+: transform: "op" must be one of/);
    expect(r.out).toMatch(/^failed in .+ tool_error: step boom \(transform\) failed/m);
    const runId = /^run (run_\w+)/.exec(r.out)?.[1] as string;
    const json = await am(['runs', 'start', 'explode', '--follow', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out)).toMatchObject({ status: 'failed', error: { code: 'tool_error' } });
    record('tool-failed.journal.ndjson', (await am(['journal', runId, '--json'])).out);
    expect((await am(['replay', runId])).code).toBe(0);
  });

  it('returns the same run for the same idempotency key and a conflict for another input', async () => {
    const a = JSON.parse((await am(['runs', 'start', 'hello', '-i', '{"name":"Bob"}', '--idempotency-key', 'cli-k1', '--json'])).out) as { id: string };
    const b = await am(['runs', 'start', 'hello', '-i', '{"name":"Bob"}', '--idempotency-key', 'cli-k1']);
    expect(b).toMatchObject({ code: 0, out: expect.stringContaining(`run ${a.id} was already started with this idempotency key`) });
    const c = await am(['runs', 'start', 'hello', '-i', '{"name":"Eve"}', '--idempotency-key', 'cli-k1']);
    expect(c).toMatchObject({ code: 2, err: 'error: this Idempotency-Key was used with a different request body (conflict)\n' });
  });

  it('prints API problems as `error: <detail> (<code>)` with exit 2 for client errors and 3 for an unreachable server', async () => {
    const missing = await am(['runs', 'get', 'run_01J00000000000000000000000']);
    expect(missing).toMatchObject({ code: 2, out: '' });
    expect(missing.err).toMatch(/^error: run run_01J00000000000000000000000 .*\(not_found\)\n$/);
    const noAgent = await am(['runs', 'start', 'nobody']);
    expect(noAgent).toMatchObject({ code: 2, err: 'error: agent "nobody" is not defined (invalid_argument)\n  /agent: no such agent\n' });
    writeFileSync(join(dir, 'echo2.json'), JSON.stringify({ ...ECHO, description: 'changed' }));
    const immutable = await am(['tools', 'put', 'echo', '--file', 'echo2.json']);
    expect(immutable.code).toBe(2);
    expect(immutable.err).toMatch(/\(conflict\)\n$/);
    const otherTenant = await am(['runs', 'list', '--tenant', 'globex-nope']);
    expect(otherTenant.code).toBe(2);
    expect(otherTenant.err).toMatch(/^error: .+ \((permission_denied|not_found)\)\n$/);
    const port = await freePort();
    const down = await am(['runs', 'list', '--url', `http://127.0.0.1:${port}`]);
    expect(down).toMatchObject({ code: 3, err: `error: cannot reach http://127.0.0.1:${port}: ECONNREFUSED (unavailable)\n` });
  });

  it('shows the server answer for budget, approvals and credentials, whether or not the endpoints exist yet', async () => {
    writeFileSync(join(dir, 'cred.json'), JSON.stringify({ kind: 'bearer', secret: 's3cr3t-value', allowedTools: ['echo'], scopes: [] }));
    for (const argv of [['budget', 'get'], ['budget', 'put', '--limit-usd', '5', '--period', 'day'], ['approvals', 'list'], ['approvals', 'approve', 'apr_nope'], ['credentials', 'put', 'stripe', '--file', 'cred.json']]) {
      const r = await am(argv);
      if (r.code !== 0) {
        expect({ argv, code: r.code }).toEqual({ argv, code: 2 });
        expect(r.err).toMatch(/^error: .+ \([a-z_]+\)\n/);
      }
      expect(r.out + r.err).not.toContain('s3cr3t-value');
    }
  });

  it('lists and revokes credentials without ever printing a secret, and shows usage', async () => {
    writeFileSync(join(dir, 'cred2.json'), JSON.stringify({ kind: 'api_key', secret: 's3cr3t-two', allowedTools: ['echo'], scopes: [] }));
    expect(await am(['credentials', 'put', 'crm', '--file', 'cred2.json'])).toMatchObject({ code: 0, out: 'stored credential crm\n' });
    const listed = await am(['credentials', 'list']);
    expect(listed).toMatchObject({ code: 0, err: '' });
    expect(listed.out).toMatch(/^NAME +KIND +TOOLS +SCOPES +UPDATED\n/);
    expect(listed.out).toMatch(/\ncrm +api_key +echo +- +\d{4}-/);
    expect(listed.out).not.toContain('s3cr3t');
    expect(await am(['credentials', 'revoke', 'crm'])).toMatchObject({ code: 0, out: 'revoked credential crm\n' });
    expect((await am(['credentials', 'list', '--json'])).out).not.toContain('"crm"');
    const usage = await am(['budget', 'usage', '--group-by', 'agent', '--json']);
    expect(usage.code).toBe(0);
    expect(JSON.parse(usage.out)).toMatchObject({ groupBy: 'agent', totals: { calls: expect.any(Number) } });
    expect((await am(['budget', 'usage'])).out).toMatch(/^usage from \S+ to \S+\n/);
  });

  it('drives an external planner agent over turns of a session, follows it with its partial output, and replays it', async () => {
    let planner: PlannerServer | undefined;
    try {
      planner = await servePlanner(createConfigAssistant({ name: 'cli-cfg' }), { servers: mesh.natsUrl });
      const tools = {
        'config_get.json': { version: '1', riskTier: 'read', transport: { kind: 'builtin', name: 'memory_get' }, inputSchema: { type: 'object', required: ['key'] } },
        'config_set.json': { version: '1', riskTier: 'write', transport: { kind: 'builtin', name: 'memory_put' }, inputSchema: { type: 'object', required: ['key', 'value'] } },
        'cfg.json': { version: '1', planner: 'cli-cfg', tools: ['config_get', 'config_set'] },
      };
      for (const [f, body] of Object.entries(tools)) writeFileSync(join(dir, f), JSON.stringify(body));
      expect((await am(['tools', 'put', 'config_get', '-f', 'config_get.json'])).code).toBe(0);
      expect((await am(['tools', 'put', 'config_set', '-f', 'config_set.json'])).code).toBe(0);
      expect((await am(['agents', 'put', 'cfg', '-f', 'cfg.json'])).code).toBe(0);

      const proposed = await am(['runs', 'start', 'cfg', '--session', 'cli-s1', '--input', '"set timeout to 30"', '--follow', '--json']);
      expect(proposed).toMatchObject({ code: 0, err: '' });
      expect(JSON.parse(proposed.out)).toMatchObject({ status: 'completed', output: { state: 'awaiting_confirmation' } });

      const applied = await am(['runs', 'start', 'cfg', '--session', 'cli-s1', '--input', '"yes"', '--follow']);
      expect(applied).toMatchObject({ code: 0, err: '' });
      const lines = applied.out.trim().split('\n');
      expect(lines[0]).toMatch(/^run (run_\w+)  agent cfg@1  planner cli-cfg$/);
      expect(lines[1]).toBe('  partial     Applying timeout = 30…');
      expect(lines[2]).toMatch(/^  step 1 +config_set@1 +\S+ m?s  ok$/);
      expect(lines.at(-1)).toBe('output: {"state":"done","message":"Applied: timeout is now 30.","change":{"key":"timeout","value":30,"previous":null},"result":{"key":"timeout","stored":true}}');
      const runId = /^run (run_\w+)/.exec(lines[0])![1];

      const journal = await am(['journal', runId]);
      expect(journal.out).toMatch(/planner\.decided +cli-cfg call_tool config_set \(write\)/);
      const replayed = await am(['replay', runId, '--json']);
      expect(replayed).toMatchObject({ code: 0, err: '' });
      expect(JSON.parse(replayed.out)).toMatchObject({ ok: true, runId, status: 'completed' });
    } finally {
      await planner?.close();
    }
  });

  it('has recorded journal fixtures for the replay regression spec', () => {
    // The fixtures are replayed by apps/cli/src/replay-fixtures.spec.ts on every unit run.
    for (const f of ['completed.journal.ndjson', 'cancelled.journal.ndjson', 'tool-failed.journal.ndjson']) {
      expect(readFileSync(join(FIXTURES, f), 'utf8').trim().split('\n').length).toBeGreaterThan(2);
    }
  });
});

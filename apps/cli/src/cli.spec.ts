import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { runCli } from './cli.js';
import { COMMANDS } from './commands/index.js';
import { stripAnsi } from './output.js';
import { fakeFetch, graphJournal, json, memoryIO, problemResponse, sse } from './test/fakes.js';

const RUN_ID = 'run_01J0000000000000000000000A';
const T = '/v1/tenants/acme';
const ENV = { AGENTMESH_URL: 'http://gw:1', AGENTMESH_API_KEY: 'amk_env', AGENTMESH_TENANT: 'acme' };
const runView = (status: string, extra: Record<string, unknown> = {}) => ({
  id: RUN_ID, agent: 'hello', agentVersion: '1', sessionId: null, status, output: null, error: null, steps: 0,
  cost: { usd: 0, inputTokens: 0, outputTokens: 0 }, createdAt: '2025-01-01T12:00:00.000Z', updatedAt: '2025-01-01T12:00:00.090Z', ...extra,
});

async function cli(argv: string[], routes: Parameters<typeof fakeFetch>[0] = {}, opts: { env?: Record<string, string>; tty?: boolean; stdin?: string; cwd?: string } = {}) {
  const f = fakeFetch(routes);
  const m = memoryIO({ env: opts.env ?? ENV, fetch: f.fetch, tty: opts.tty, stdin: opts.stdin, cwd: opts.cwd });
  const code = await runCli(argv, m.io);
  return { code, out: m.stdout.text, err: m.stderr.text, requests: f.requests };
}

describe('help and usage errors', () => {
  it('prints help for the CLI and for every command with exit 0', async () => {
    expect(await cli(['--help'])).toMatchObject({ code: 0, out: expect.stringContaining('Usage: agentmesh <command>') });
    expect(await cli(['runs', '--help'])).toMatchObject({ code: 0, out: expect.stringContaining('runs tail <id>') });
    for (const c of COMMANDS) {
      const r = await cli([...c.path, '--help']);
      expect(r).toMatchObject({ code: 0, err: '' });
      expect(r.out).toContain(`Usage: agentmesh ${c.path.join(' ')}`);
      expect(r.requests).toEqual([]);
    }
  });

  it('exits 2 with `error: ... (usage)` for unknown commands, options and bad arguments, before calling the API', async () => {
    const cases: Array<[string[], string]> = [
      [['runs', 'frob'], "error: unknown command 'runs frob' (usage)"],
      [['runs'], "error: 'runs' needs a command (usage)"],
      [['runs', 'list', '--colour'], "error: unknown option '--colour' (usage)"],
      [['runs', 'get'], 'error: missing <id> (usage)'],
      [['runs', 'start', 'hello', '--input', '{nope'], 'error: --input is not valid JSON'],
      [['keys', 'issue', '--roles', 'owner,root'], "error: unknown role 'root'"],
      [['tools', 'put', 'echo'], 'error: --file is required (usage)'],
      [['tools', 'put', 'echo', '--file', 'missing.json'], 'error: cannot read missing.json: ENOENT (usage)'],
      [['budget', 'put', '--limit-usd', 'lots'], 'error: --limit-usd must be a non-negative number'],
      [['replay'], 'error: give a run id or --from-file (usage)'],
    ];
    for (const [argv, message] of cases) {
      const r = await cli(argv);
      expect({ argv, code: r.code, err: r.err.split('\n')[0] }).toEqual({ argv, code: 2, err: expect.stringContaining(message) });
      expect(r.requests).toEqual([]);
    }
  });

  it('needs a key and a tenant, from flags, a key file or the environment', async () => {
    expect((await cli(['tools', 'list'], {}, { env: { AGENTMESH_TENANT: 'acme' } })).err).toContain('error: no API key: pass --key or --key-file, or set AGENTMESH_API_KEY (usage)');
    expect((await cli(['tools', 'list'], {}, { env: { AGENTMESH_API_KEY: 'k' } })).err).toContain('error: no tenant: pass --tenant or set AGENTMESH_TENANT (usage)');
    const dir = mkdtempSync(join(tmpdir(), 'agentmesh-cli-'));
    writeFileSync(join(dir, 'key'), 'amk_from_file\n');
    const routes = { 'GET /v1/tenants/other/tools': json(200, { tools: [] }) };
    const r = await cli(['tools', 'list', '--key-file', 'key', '--tenant', 'other', '--url', 'http://elsewhere:2'], routes, { env: ENV, cwd: dir });
    expect(r).toMatchObject({ code: 0, out: 'no tools\n' });
    expect(r.requests[0]).toMatchObject({ url: 'http://elsewhere:2/v1/tenants/other/tools', headers: { authorization: 'Bearer amk_from_file' } });
    expect((await cli(['tools', 'list', '--key', 'amk_flag'], { [`GET ${T}/tools`]: json(200, { tools: [] }) })).requests[0].headers.authorization).toBe('Bearer amk_flag');
  });
});

describe('problems from the API', () => {
  it('prints `error: <detail> (<code>)` and the field problems on stderr, exit 2 for 4xx', async () => {
    const r = await cli(['runs', 'start', 'nobody'], {
      [`POST ${T}/runs`]: problemResponse(400, 'agent "nobody" is not defined', 'invalid_argument', { errors: [{ field: '/agent', message: 'no such agent' }] }),
    });
    expect(r).toMatchObject({ code: 2, out: '' });
    expect(r.err).toBe('error: agent "nobody" is not defined (invalid_argument)\n  /agent: no such agent\n');
  });

  it('shows the server problem for an endpoint that does not exist yet', async () => {
    const r = await cli(['credentials', 'put', 'stripe', '--file', '-'], {}, { stdin: '{"kind":"bearer","secret":"s3cr3t"}' });
    expect(r).toMatchObject({ code: 2, err: 'error: no such resource (not_found)\n' });
    expect(r.requests[0]).toMatchObject({ method: 'PUT', url: `http://gw:1${T}/credentials/stripe`, body: { kind: 'bearer', secret: 's3cr3t' } });
  });

  it('exits 3 for server errors and for a server that cannot be reached', async () => {
    expect(await cli(['runs', 'list'], { [`GET ${T}/runs`]: problemResponse(503, 'NATS is unavailable', 'unavailable') })).toMatchObject({ code: 3, err: 'error: NATS is unavailable (unavailable)\n' });
    const m = memoryIO({ env: ENV, fetch: (async () => { throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }); }) as typeof fetch });
    expect(await runCli(['runs', 'list'], m.io)).toBe(3);
    expect(m.stderr.text).toBe('error: cannot reach http://gw:1: ECONNREFUSED (unavailable)\n');
  });
});

describe('human and JSON output', () => {
  const tools = { tools: [
    { name: 'echo', version: '1', riskTier: 'read', transport: { kind: 'builtin', name: 'echo' }, disabled: false, createdAt: '2025-01-01T12:00:00.000Z' },
    { name: 'pay', version: '2.1', riskTier: 'irreversible', transport: { kind: 'http', url: 'https://pay.example/x' }, disabled: true, createdAt: '2025-01-02T08:30:00.000Z' },
  ] };

  it('prints tables with aligned columns, and the response as one JSON document with --json', async () => {
    const human = await cli(['tools', 'list'], { [`GET ${T}/tools`]: json(200, tools) });
    expect(human.out).toBe([
      'NAME  VERSION  RISK          TRANSPORT                   STATE     CREATED',
      'echo  1        read          builtin:echo                enabled   2025-01-01 12:00:00',
      'pay   2.1      irreversible  http:https://pay.example/x  disabled  2025-01-02 08:30:00',
      '',
    ].join('\n'));
    const machine = await cli(['tools', 'list', '--json'], { [`GET ${T}/tools`]: json(200, tools) });
    expect(JSON.parse(machine.out)).toEqual(tools);
  });

  it('colours statuses only when stdout is a terminal', async () => {
    const routes = { [`GET ${T}/runs`]: json(200, { runs: [runView('failed')], nextCursor: 'run_x' }) };
    const pipe = await cli(['runs', 'list'], routes);
    expect(pipe.out).not.toContain('\x1b[');
    expect(pipe.out).toContain('more: agentmesh runs list --cursor run_x');
    const tty = await cli(['runs', 'list'], routes, { tty: true });
    expect(tty.out).toContain('\x1b[31mfailed\x1b[0m');
  });

  it('sends the run input, session and idempotency key when starting a run', async () => {
    const r = await cli(['runs', 'start', 'hello', '--input', '{"name":"Ada"}', '--session', 's1', '--idempotency-key', 'k-1'], { [`POST ${T}/runs`]: json(201, runView('queued')) });
    expect(r).toMatchObject({ code: 0, out: `started run ${RUN_ID} (queued)\n` });
    expect(r.requests[0]).toMatchObject({ body: { agent: 'hello', input: { name: 'Ada' }, sessionId: 's1' }, headers: { 'idempotency-key': 'k-1' } });
  });
});

describe('following a run', () => {
  const follow = (end: 'completed' | 'failed' | 'cancelled', extra: string[] = [], tty = false) => cli(['runs', 'start', 'hello', '--follow', ...extra], {
    [`POST ${T}/runs`]: json(201, runView('queued')),
    [`GET ${T}/runs/${RUN_ID}/events`]: sse(graphJournal(end)),
    [`GET ${T}/runs/${RUN_ID}`]: json(200, runView(end, { steps: 2 })),
  }, { tty });

  it('shows step n/N, the tool and its duration, then the outcome, and exits 0 when the run completes', async () => {
    const r = await follow('completed');
    expect(r.code).toBe(0);
    expect(r.out).toBe([
      `run ${RUN_ID}  agent hello@1  planner graph`,
      '  step 1/2    echo@1                 12 ms  ok',
      '  step 2/2    transform@1             3 ms  ok',
      'completed in 80 ms  2 steps  cost $0.0000',
      'output: {"text":"HELLO, ADA!"}',
      '',
    ].join('\n'));
  });

  it('exits 1 when the run fails or is cancelled', async () => {
    const failed = await follow('failed');
    expect(failed.code).toBe(1);
    expect(failed.out).toContain('  step 2/2    transform@1           1.50 s  failed  bad_args: op is wrong');
    expect(failed.out).toContain('failed in 80 ms  tool_error: step shout (transform) failed: op is wrong');
    const cancelled = await follow('cancelled');
    expect(cancelled.code).toBe(1);
    expect(cancelled.out).toContain('cancel requested: enough');
    expect(cancelled.out).toContain('cancelled in 90 ms  after 2 steps: cancelled by request');
  });

  it('shows the step in flight live on a terminal and replaces it when it ends', async () => {
    const r = await follow('completed', [], true);
    expect(r.out).toContain('  step 1/2    echo                running…\x1b[2K\r  step 1/2    echo@1                 12 ms  \x1b[32mok\x1b[0m\n');
    expect(stripAnsi(r.out.replace(/\x1b\[2K\r/g, ''))).toContain('completed in 80 ms');
  });

  it('prints only the finished run as one JSON document with --json', async () => {
    const r = await follow('failed', ['--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ id: RUN_ID, status: 'failed' });
  });

  it('tails a run as NDJSON events with --json', async () => {
    const journal = graphJournal('completed');
    const r = await cli(['runs', 'tail', RUN_ID, '--json'], { [`GET ${T}/runs/${RUN_ID}/events`]: sse(journal) });
    expect(r.code).toBe(0);
    expect(r.out.trim().split('\n').map((l) => JSON.parse(l))).toEqual(journal);
  });

  it('prints the journal one event per line', async () => {
    const r = await cli(['journal', RUN_ID], { [`GET ${T}/runs/${RUN_ID}/events`]: sse(graphJournal('completed')) });
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(9);
    expect(lines[2]).toBe('    3  12:00:00.030    1  step.started          greet: echo {"text":"Hello, Ada!"}');
    expect(lines[8]).toBe('    9  12:00:00.090    2  run.completed         output {"text":"HELLO, ADA!"}');
  });
});

describe('replay', () => {
  it('reports no divergence for a journal the engine agrees with', async () => {
    const journal = graphJournal('completed').map((e) => JSON.stringify(e)).join('\n');
    const r = await cli(['replay', '--from-file', '-'], {}, { stdin: journal });
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(/^no divergence: run run_01J0000000000000000000000A, 9 events, \d+ engine decisions re-made \(run completed\)\n$/);
  });

  it('exits 1 and prints the first divergence', async () => {
    const journal = graphJournal('completed');
    (journal[5].data as { args: { op: string } }).args.op = 'lower';
    const r = await cli(['replay', '--from-file', '-', '--json'], {}, { stdin: journal.map((e) => JSON.stringify(e)).join('\n') });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({
      ok: false, runId: RUN_ID,
      divergence: { seq: 6, step: 2, recorded: { type: 'step.started', data: { args: { op: 'lower' } } }, decided: { type: 'step.started', data: { args: { op: 'upper' } } } },
    });
  });

  it('fetches the journal over SSE when given a run id', async () => {
    const r = await cli(['replay', RUN_ID], { [`GET ${T}/runs/${RUN_ID}/events`]: sse(graphJournal('failed')) });
    expect(r.code).toBe(0);
    expect(r.out).toContain('(run failed)');
  });
});

describe('credentials and usage', () => {
  const creds = { credentials: [
    { name: 'stripe', kind: 'bearer', allowedTools: ['pay', 'refund'], scopes: [], createdAt: '2025-01-01T12:00:00.000Z', updatedAt: '2025-01-02T08:00:00.000Z' },
    { name: 'crm', kind: 'oauth2_client_credentials', allowedTools: ['crm_get'], scopes: ['read', 'write'], createdAt: '2025-01-01T12:00:00.000Z', updatedAt: '2025-01-01T12:00:00.000Z' },
  ] };

  it('lists credentials as metadata and revokes one', async () => {
    const r = await cli(['credentials', 'list'], { [`GET ${T}/credentials`]: json(200, creds) });
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toBe([
      'NAME    KIND                       TOOLS       SCOPES      UPDATED',
      'stripe  bearer                     pay,refund  -           2025-01-02 08:00:00',
      'crm     oauth2_client_credentials  crm_get     read write  2025-01-01 12:00:00',
      '',
    ].join('\n'));
    expect(JSON.parse((await cli(['credentials', 'list', '--json'], { [`GET ${T}/credentials`]: json(200, creds) })).out)).toEqual(creds);
    const revoked = await cli(['credentials', 'revoke', 'stripe'], { [`DELETE ${T}/credentials/stripe`]: new Response(null, { status: 204 }) });
    expect(revoked).toMatchObject({ code: 0, out: 'revoked credential stripe\n' });
    expect(revoked.requests[0]).toMatchObject({ method: 'DELETE', url: `http://gw:1${T}/credentials/stripe` });
  });

  it('shows metered usage grouped, with the range and grouping passed as query parameters', async () => {
    const report = {
      tenantId: 'acme', from: '2025-01-01T00:00:00.000Z', to: '2025-01-02T00:00:00.000Z', granularity: 'hour', groupBy: 'agent',
      totals: { usd: 0.25, calls: 12, inputTokens: 1000, outputTokens: 200 },
      groups: [{ key: 'hello', usd: 0.05, calls: 10, inputTokens: 0, outputTokens: 0 }, { key: 'assistant', usd: 0.2, calls: 2, inputTokens: 1000, outputTokens: 200 }],
    };
    const r = await cli(['budget', 'usage', '--from', '2025-01-01', '--to', '2025-01-02', '--group-by', 'agent'], { [`GET ${T}/usage`]: json(200, report) });
    expect(r.code).toBe(0);
    expect(new URL(r.requests[0].url).search).toBe('?from=2025-01-01&to=2025-01-02&groupBy=agent');
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('usage from 2025-01-01T00:00:00.000Z to 2025-01-02T00:00:00.000Z by agent');
    expect(lines[1].split(/ +/)).toEqual(['AGENT', 'COST', 'CALLS', 'TOKENS', 'IN', 'TOKENS', 'OUT']);
    expect(lines.slice(2, 5).map((l) => l.split(/ +/)[0])).toEqual(['hello', 'assistant', 'total']);
    expect(lines[4]).toContain('$0.2500');
    expect((await cli(['budget', 'usage', '--group-by', 'day'])).err).toContain('error: --group-by must be one of agent, model, tool (usage)');
  });
});

describe('following a run of an external planner', () => {
  const runId = RUN_ID;
  const ev = (seq: number, type: string, step: number, data: unknown) => ({ seq, runId, tenantId: 'acme', type, at: new Date(Date.UTC(2025, 0, 1, 12, 0, 0, seq * 10)).toISOString(), step, data });
  const agent = { name: 'cfg', version: '1', planner: 'config-assistant', tools: ['config_set'], limits: {} };
  const journal = [
    ev(1, 'run.created', 0, { agent, input: 'yes', sessionId: 's1' }),
    ev(2, 'run.started', 0, { tools: { config_set: { name: 'config_set', version: '1', riskTier: 'write' } }, session: { turns: [], memory: {} } }),
    ev(3, 'planner.decided', 0, { decisionKey: `${runId}:d1`, planner: 'config-assistant', protocol: 'planner.v1', decision: { kind: 'call_tool', tool: 'config_set', args: { key: 'timeout', value: 30 }, id: 'write' }, emit: ['Applying timeout = 30…'] }),
    ev(4, 'llm.delta', 0, { callKey: `${runId}:d1`, text: 'Applying timeout = 30…' }),
    ev(5, 'step.started', 1, { kind: 'tool', stepId: 'write', tool: 'config_set', args: { key: 'timeout', value: 30 } }),
    ev(6, 'tool.called', 1, { callKey: `${runId}:1:0`, tool: 'config_set', version: '1', riskTier: 'write' }),
    ev(7, 'tool.completed', 1, { callKey: `${runId}:1:0`, result: { stored: true }, durationMs: 4 }),
    ev(8, 'planner.decided', 1, { decisionKey: `${runId}:d2`, planner: 'config-assistant', protocol: 'planner.v1', decision: { kind: 'finish', output: { state: 'done' } } }),
    ev(9, 'run.completed', 1, { output: { state: 'done' }, cost: { usd: 0, inputTokens: 0, outputTokens: 0 } }),
  ];

  it("shows the planner's partial output as it streams, then the steps and the outcome", async () => {
    const r = await cli(['runs', 'tail', runId], { [`GET ${T}/runs/${runId}/events`]: sse(journal) });
    expect(r.code).toBe(0);
    expect(r.out).toBe([
      `run ${runId}  agent cfg@1  planner config-assistant`,
      '  partial     Applying timeout = 30…',
      '  step 1      config_set@1            4 ms  ok',
      'completed in 80 ms  1 step  cost $0.0000',
      'output: {"state":"done"}',
      '',
    ].join('\n'));
  });

  it("prints the planner's decisions in the journal", async () => {
    const r = await cli(['journal', runId], { [`GET ${T}/runs/${runId}/events`]: sse(journal) });
    const lines = r.out.trim().split('\n');
    expect(lines[2]).toMatch(/planner\.decided +config-assistant call_tool config_set \(write\) \{"key":"timeout","value":30\}$/);
    expect(lines[7]).toMatch(/planner\.decided +config-assistant finish \{"state":"done"\}$/);
  });
});

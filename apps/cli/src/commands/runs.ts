import type { CommandSpec, Context } from '../command.js';
import { EXIT, UsageError } from '../errors.js';
import { compactJson, formatTime, formatUsd, keyValues, table } from '../output.js';
import { RunProgress } from '../progress.js';
import { tenantPath, withQuery } from './paths.js';

export interface RunView {
  id: string; agent: string; agentVersion?: string; sessionId?: string | null; status: string; output?: unknown;
  error?: { code: string; message: string } | null; steps: number; cost?: { usd: number; inputTokens: number; outputTokens: number };
  metadata?: Record<string, string>; createdAt: string; updatedAt: string;
}

const TERMINAL = ['completed', 'failed', 'cancelled'];

/** Exit code for a finished run: 0 completed, 1 failed or cancelled. */
export const exitForStatus = (status: string): number => (status === 'completed' ? EXIT.ok : EXIT.runFailed);

/** Parses `--input` (JSON text) or `--input-file`; undefined when neither is given. */
export async function runInput(ctx: Context, opts: Record<string, unknown>): Promise<unknown> {
  if (opts.input !== undefined && opts['input-file'] !== undefined) throw new UsageError('give --input or --input-file, not both', 'runs start');
  if (typeof opts['input-file'] === 'string') return ctx.readDocument(opts['input-file'], 'run input');
  if (typeof opts.input !== 'string') return undefined;
  try {
    return JSON.parse(opts.input);
  } catch (e) {
    throw new UsageError(`--input is not valid JSON: ${(e as Error).message}`, 'runs start', { cause: e });
  }
}

function seqOption(raw: unknown, cmd: string): number {
  if (raw === undefined) return 0;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError('--after must be a non-negative journal sequence', cmd);
  return n;
}

export function showRun(ctx: Context, r: RunView): string {
  return keyValues([
    ['run', r.id], ['agent', r.agentVersion ? `${r.agent}@${r.agentVersion}` : r.agent], ['session', r.sessionId ?? undefined],
    ['status', ctx.out.status(r.status)], ['steps', String(r.steps)],
    ['cost', r.cost ? `${formatUsd(r.cost.usd)} (${r.cost.inputTokens} in / ${r.cost.outputTokens} out tokens)` : undefined],
    ['created', formatTime(r.createdAt)], ['updated', formatTime(r.updatedAt)],
    ['metadata', r.metadata ? compactJson(r.metadata) : undefined],
    ['error', r.error ? `${r.error.code}: ${r.error.message}` : undefined],
    ['output', r.output !== null && r.output !== undefined ? compactJson(r.output) : undefined],
  ]);
}

async function getRun(ctx: Context, id: string): Promise<RunView> {
  return (await ctx.api().request<RunView>('GET', tenantPath(ctx, 'runs', id))).body;
}

/**
 * Follows a run to its end. Human: progress lines; `--json`: NDJSON events (unless `quiet`).
 * Returns the final status.
 */
export async function followRun(ctx: Context, runId: string, opts: { after?: number; printEvents: boolean }): Promise<string> {
  const progress = !ctx.json && opts.printEvents ? new RunProgress(ctx.out) : null;
  let outcome: string;
  try {
    ({ outcome } = await ctx.api().followRun(ctx.tenant(), runId, {
      after: opts.after ?? 0,
      onEvent: (e) => {
        if (!opts.printEvents) return;
        if (ctx.json) ctx.out.line(e);
        else progress?.onEvent(e);
      },
    }));
  } finally {
    progress?.close();
  }
  if (progress && !progress.finished) ctx.out.print(`run ${runId} has ended: ${ctx.out.status(outcome)}`);
  return outcome;
}

export const runCommands: CommandSpec[] = [
  {
    path: ['runs', 'start'],
    summary: 'start a run of an agent',
    args: [{ name: 'agent', description: 'the agent to run (its latest version)' }],
    options: {
      input: { type: 'string', short: 'i', value: 'json', description: 'the run input as JSON text' },
      'input-file': { type: 'string', value: 'path', description: 'read the run input from a JSON (or YAML) file; - reads stdin' },
      session: { type: 'string', value: 'id', description: 'session id (routes the run to the same replica as earlier runs of the session)' },
      'idempotency-key': { type: 'string', value: 'key', description: 'starting again with the same key and input returns the same run' },
      follow: { type: 'boolean', short: 'F', description: 'follow the run to its end, showing progress; exit 1 if it fails' },
    },
    notes: [
      'With --json: the run as a JSON document; with --follow too, the finished run.',
      'With --follow the exit code is 0 when the run completes and 1 when it fails or is cancelled.',
    ],
    async run(ctx, { args, opts }) {
      const input = await runInput(ctx, opts);
      const body = { agent: args.agent, ...(input !== undefined ? { input } : {}), ...(typeof opts.session === 'string' ? { sessionId: opts.session } : {}) };
      const headers: Record<string, string> = typeof opts['idempotency-key'] === 'string' ? { 'idempotency-key': opts['idempotency-key'] } : {};
      const res = await ctx.api().request<RunView>('POST', tenantPath(ctx, 'runs'), body, headers);
      const run = res.body;
      if (!opts.follow) {
        if (ctx.json) ctx.out.document(run);
        else ctx.out.print(res.status === 201 ? `started run ${run.id} (${ctx.out.status(run.status)})` : `run ${run.id} was already started with this idempotency key (${ctx.out.status(run.status)})`);
        return EXIT.ok;
      }
      if (!ctx.json && res.status !== 201) ctx.out.print(`run ${run.id} was already started with this idempotency key`);
      const outcome = await followRun(ctx, run.id, { printEvents: !ctx.json });
      if (ctx.json) {
        let final = await getRun(ctx, run.id);
        for (let i = 0; i < 20 && !TERMINAL.includes(final.status); i++) {
          await new Promise((r) => setTimeout(r, 100));
          final = await getRun(ctx, run.id);
        }
        ctx.out.document(final);
      }
      return exitForStatus(outcome);
    },
  },
  {
    path: ['runs', 'get'],
    summary: 'show a run: status, steps, cost, output or error',
    args: [{ name: 'id', description: 'the run id' }],
    async run(ctx, { args }) {
      const r = await getRun(ctx, args.id as string);
      if (ctx.json) ctx.out.document(r);
      else ctx.out.print(showRun(ctx, r));
      return EXIT.ok;
    },
  },
  {
    path: ['runs', 'list'],
    summary: 'list runs, newest first',
    options: {
      status: { type: 'string', value: 'status', description: 'queued, running, waiting_approval, completed, failed or cancelled' },
      agent: { type: 'string', value: 'name', description: 'only runs of this agent' },
      limit: { type: 'string', short: 'n', value: 'n', description: 'page size, 1 to 100 (default 20)' },
      cursor: { type: 'string', value: 'cursor', description: 'the next page, from the previous page' },
    },
    async run(ctx, { opts }) {
      const path = withQuery(tenantPath(ctx, 'runs'), { status: opts.status as string | undefined, agent: opts.agent as string | undefined, limit: opts.limit as string | undefined, cursor: opts.cursor as string | undefined });
      const res = await ctx.api().request<{ runs: RunView[]; nextCursor: string | null }>('GET', path);
      if (ctx.json) { ctx.out.document(res.body); return EXIT.ok; }
      if (!res.body.runs.length) ctx.out.print('no runs');
      else ctx.out.print(table(['ID', 'AGENT', 'STATUS', 'STEPS', 'CREATED', 'UPDATED'], res.body.runs.map((r) => [
        r.id, r.agentVersion ? `${r.agent}@${r.agentVersion}` : r.agent, ctx.out.status(r.status), String(r.steps), formatTime(r.createdAt), formatTime(r.updatedAt),
      ])));
      if (res.body.nextCursor) ctx.out.print(`more: agentmesh runs list --cursor ${res.body.nextCursor}`);
      return EXIT.ok;
    },
  },
  {
    path: ['runs', 'tail'],
    summary: "follow a run's progress to its end (exit 1 if it fails)",
    args: [{ name: 'id', description: 'the run id' }],
    options: { after: { type: 'string', value: 'seq', description: 'start after this journal sequence (default: from the start)' } },
    notes: ['Human output shows each step (step n/N, tool, duration); --json prints the journal events as NDJSON.',
      'Exit code 0 when the run completes, 1 when it fails or is cancelled.'],
    async run(ctx, { args, opts }) {
      const outcome = await followRun(ctx, args.id as string, { after: seqOption(opts.after, 'runs tail'), printEvents: true });
      return exitForStatus(outcome);
    },
  },
  {
    path: ['runs', 'cancel'],
    summary: 'cancel a run (it ends cancelled after the step in flight)',
    args: [{ name: 'id', description: 'the run id' }],
    options: { reason: { type: 'string', value: 'text', description: 'why (recorded in the journal)' } },
    async run(ctx, { args, opts }) {
      const body = typeof opts.reason === 'string' ? { reason: opts.reason } : {};
      const res = await ctx.api().request<RunView>('POST', tenantPath(ctx, 'runs', args.id as string, 'cancel'), body);
      if (ctx.json) ctx.out.document(res.body);
      else ctx.out.print(`cancel requested for run ${args.id} (${ctx.out.status(res.body?.status ?? 'running')})`);
      return EXIT.ok;
    },
  },
];

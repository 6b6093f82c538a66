import type { AnyJournalEvent } from '#libs/contracts';
import { loadConfig } from '#libs/config';
import { replayJournal, type ReplayReport } from '#libs/engine';
import type { CommandSpec, Context } from '../command.js';
import { EXIT, UsageError } from '../errors.js';
import { compactJson, keyValues } from '../output.js';

export interface Divergence {
  seq: number;
  step?: number;
  /** What the journal holds. */
  recorded?: { type: string; step: number; data: unknown };
  /** What the engine decides now (null: it would decide nothing). */
  decided?: { type: string; step: number; data: unknown } | null;
  /** The engine refused the journal (an event that does not fit the state machine). */
  error?: string;
}

export interface ReplayOutcome {
  ok: boolean;
  runId: string;
  events: number;
  decisionsChecked: number;
  status: string;
  divergence?: Divergence;
}

/** Parses a journal file: NDJSON events (as `agentmesh journal --json` prints them) or a JSON array. */
export function parseJournal(text: string, source: string): AnyJournalEvent[] {
  const trimmed = text.trim();
  if (!trimmed) throw new UsageError(`${source} is empty`, 'replay');
  let items: unknown[];
  if (trimmed.startsWith('[')) {
    try { items = JSON.parse(trimmed) as unknown[]; } catch (e) { throw new UsageError(`${source} is not valid JSON: ${(e as Error).message}`, 'replay', { cause: e }); }
  } else {
    items = trimmed.split('\n').map((l, i) => {
      if (!l.trim()) return null;
      try { return JSON.parse(l) as unknown; } catch (e) { throw new UsageError(`${source} line ${i + 1} is not valid JSON: ${(e as Error).message}`, 'replay', { cause: e }); }
    }).filter((x) => x !== null);
  }
  items.forEach((e, i) => {
    const ev = e as Partial<AnyJournalEvent> | null;
    if (!ev || typeof ev !== 'object' || typeof ev.seq !== 'number' || typeof ev.type !== 'string' || typeof ev.runId !== 'string' || typeof ev.tenantId !== 'string') {
      throw new UsageError(`${source} entry ${i + 1} is not a journal event (seq, runId, tenantId, type, at, step, data)`, 'replay');
    }
  });
  const events = items as AnyJournalEvent[];
  const runs = new Set(events.map((e) => e.runId));
  if (runs.size > 1) throw new UsageError(`${source} mixes the journals of ${runs.size} runs`, 'replay');
  return events;
}

/**
 * Re-runs the engine's decisions over a journal. A journal the engine refuses (it throws) is a
 * divergence too, at the first event whose prefix cannot be replayed.
 */
export function replayEvents(events: readonly AnyJournalEvent[], globalMaxSteps: number): ReplayOutcome {
  const runId = events[0].runId;
  let report: ReplayReport;
  try {
    report = replayJournal(events, { globalMaxSteps });
  } catch (e) {
    let at = events.length - 1;
    for (let n = 1; n <= events.length; n++) {
      try { replayJournal(events.slice(0, n), { globalMaxSteps }); } catch { at = n - 1; break; }
    }
    const bad = events[at];
    return {
      ok: false, runId, events: events.length, decisionsChecked: 0, status: 'unknown',
      divergence: { seq: bad.seq, step: bad.step, recorded: { type: bad.type, step: bad.step, data: bad.data }, error: (e as Error).message },
    };
  }
  return {
    ok: report.ok, runId, events: events.length, decisionsChecked: report.decisionsChecked, status: report.state.status,
    ...(report.divergence ? { divergence: { step: report.divergence.recorded.step, ...report.divergence } } : {}),
  };
}

/** The step cap the orchestrator applies: --global-max-steps, else AGENTMESH_GLOBAL_MAX_STEPS, else its default. */
function globalMaxSteps(ctx: Context, raw: unknown): number {
  const value = typeof raw === 'string' ? raw : ctx.env.AGENTMESH_GLOBAL_MAX_STEPS;
  try {
    return loadConfig('orchestrator', { AGENTMESH_GLOBAL_MAX_STEPS: value }).globalMaxSteps;
  } catch (e) {
    throw new UsageError(`the global step limit must be a positive integer (got ${JSON.stringify(value)})`, 'replay', { cause: e });
  }
}

function printOutcome(ctx: Context, o: ReplayOutcome): void {
  if (ctx.json) { ctx.out.document(o); return; }
  if (o.ok) {
    ctx.out.print(`${ctx.out.paint('no divergence', 'green')}: run ${o.runId}, ${o.events} events, ${o.decisionsChecked} engine decisions re-made (run ${o.status})`);
    return;
  }
  const d = o.divergence as Divergence;
  ctx.out.print(`${ctx.out.paint('divergence', 'red')} at journal seq ${d.seq}${d.step !== undefined ? ` (step ${d.step})` : ''} of run ${o.runId}`);
  const show = (x: { type: string; data: unknown } | null | undefined) => (x ? `${x.type} ${compactJson(x.data, 300)}` : 'nothing (the engine would wait here)');
  ctx.out.print(keyValues([
    ['recorded', show(d.recorded)],
    ['decided', d.error ? undefined : show(d.decided)],
    ['error', d.error],
  ]).replace(/^/gm, '  ').trimEnd());
}

export const replayCommands: CommandSpec[] = [
  {
    path: ['replay'],
    summary: "re-run the engine's decisions against a run's journal and report divergence",
    args: [{ name: 'runId', description: 'the run whose journal to fetch (not needed with --from-file)', optional: true }],
    options: {
      'from-file': { type: 'string', value: 'path', description: "replay a recorded journal (NDJSON from 'agentmesh journal --json', or a JSON array); - reads stdin" },
      'global-max-steps': { type: 'string', value: 'n', description: 'the orchestrator\'s global step cap (env AGENTMESH_GLOBAL_MAX_STEPS, default as the orchestrator)' },
    },
    notes: [
      'Every event the engine wrote must be the one the current engine decides again: the regression check',
      'before shipping a new orchestrator or planner. Exit 0 with no divergence, 1 with the first divergence printed.',
    ],
    async run(ctx, { args, opts }) {
      const cap = globalMaxSteps(ctx, opts['global-max-steps']);
      let events: AnyJournalEvent[];
      if (typeof opts['from-file'] === 'string') {
        events = parseJournal(await ctx.readText(opts['from-file']), opts['from-file'] === '-' ? 'stdin' : opts['from-file']);
        if (args.runId && events[0].runId !== args.runId) throw new UsageError(`${opts['from-file']} holds run ${events[0].runId}, not ${args.runId}`, 'replay');
      } else {
        if (!args.runId) throw new UsageError('give a run id or --from-file', 'replay');
        events = [];
        await ctx.api().followRun(ctx.tenant(), args.runId, { onEvent: (e) => { events.push(e); } });
        if (!events.length) throw new UsageError(`run ${args.runId} has no journal events`, 'replay');
      }
      const outcome = replayEvents(events, cap);
      printOutcome(ctx, outcome);
      return outcome.ok ? EXIT.ok : EXIT.runFailed;
    },
  },
];

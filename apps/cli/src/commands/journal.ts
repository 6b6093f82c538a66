import type { CommandSpec } from '../command.js';
import { EXIT, UsageError } from '../errors.js';
import { journalLine } from '../progress.js';

export const journalCommands: CommandSpec[] = [
  {
    path: ['journal'],
    summary: "print a run's journal (follows a live run until its terminal event)",
    args: [{ name: 'runId', description: 'the run id' }],
    options: { after: { type: 'string', value: 'seq', description: 'start after this journal sequence' } },
    notes: [
      'Reads the run\'s Server-Sent Events stream from the start (or --after) and closes at the terminal event.',
      'Human output: SEQ TIME STEP TYPE SUMMARY per event. --json: one event per line (NDJSON), the format',
      "'agentmesh replay --from-file' reads.",
    ],
    async run(ctx, { args, opts }) {
      const after = opts.after === undefined ? 0 : Number(opts.after);
      if (!Number.isSafeInteger(after) || after < 0) throw new UsageError('--after must be a non-negative journal sequence', 'journal');
      await ctx.api().followRun(ctx.tenant(), args.runId as string, {
        after,
        onEvent: (e) => (ctx.json ? ctx.out.line(e) : ctx.out.print(journalLine(e, ctx.out))),
      });
      return EXIT.ok;
    },
  },
];

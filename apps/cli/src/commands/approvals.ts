import type { CommandSpec } from '../command.js';
import { EXIT } from '../errors.js';
import { compactJson, formatTime, table } from '../output.js';
import { tenantPath, withQuery } from './paths.js';

interface Approval { id: string; runId: string; tool: string; version: string; args: unknown; riskTier: string; expiresAt: string; status?: string }

function decision(verb: 'approve' | 'deny'): CommandSpec {
  return {
    path: ['approvals', verb],
    summary: verb === 'approve' ? 'approve a pending tool call' : 'deny a pending tool call (the run fails with approval_denied)',
    args: [{ name: 'id', description: 'the approval id' }],
    options: { reason: { type: 'string', value: 'text', description: 'why (recorded in the journal)' } },
    async run(ctx, { args, opts }) {
      const body = { decision: verb, ...(typeof opts.reason === 'string' ? { reason: opts.reason } : {}) };
      const res = await ctx.api().request<Record<string, unknown> | null>('POST', tenantPath(ctx, 'approvals', args.id as string), body);
      if (ctx.json) ctx.out.document(res.body ?? { id: args.id, decision: verb });
      else ctx.out.print(`${verb === 'approve' ? 'approved' : 'denied'} ${args.id}`);
      return EXIT.ok;
    },
  };
}

export const approvalCommands: CommandSpec[] = [
  {
    path: ['approvals', 'list'],
    summary: 'list approvals (pending by default)',
    options: { status: { type: 'string', value: 'status', description: 'pending (default), approved, denied, expired' } },
    async run(ctx, { opts }) {
      const res = await ctx.api().request<{ approvals: Approval[] }>('GET', withQuery(tenantPath(ctx, 'approvals'), { status: (opts.status as string | undefined) ?? 'pending' }));
      if (ctx.json) { ctx.out.document(res.body); return EXIT.ok; }
      const rows = res.body?.approvals ?? [];
      if (!rows.length) { ctx.out.print('no approvals'); return EXIT.ok; }
      ctx.out.print(table(['ID', 'RUN', 'TOOL', 'RISK', 'EXPIRES', 'ARGS'], rows.map((a) => [
        a.id, a.runId, `${a.tool}@${a.version}`, a.riskTier, formatTime(a.expiresAt), compactJson(a.args, 60),
      ])));
      return EXIT.ok;
    },
  },
  decision('approve'),
  decision('deny'),
];

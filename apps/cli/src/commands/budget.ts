import type { CommandSpec } from '../command.js';
import { EXIT, UsageError } from '../errors.js';
import { compactJson, formatUsd, keyValues, table } from '../output.js';
import { tenantPath, withQuery } from './paths.js';

interface Budget { limitUsd?: number; period?: string; spentUsd?: number; spent?: number; reservedUsd?: number; reserved?: number; remainingUsd?: number; [k: string]: unknown }

interface UsageTotals { usd: number; calls: number; inputTokens: number; outputTokens: number }
interface UsageReport { tenantId: string; from: string; to: string; groupBy: string | null; totals: UsageTotals; groups: Array<{ key: string } & UsageTotals> }

const GROUP_BY = ['agent', 'model', 'tool'];

function usageRow(label: string, u: UsageTotals): string[] {
  return [label, formatUsd(u.usd), String(u.calls), String(u.inputTokens), String(u.outputTokens)];
}

function show(b: Budget): string {
  const spent = b.spentUsd ?? b.spent;
  const reserved = b.reservedUsd ?? b.reserved;
  const known = new Set(['limitUsd', 'period', 'spentUsd', 'spent', 'reservedUsd', 'reserved', 'remainingUsd']);
  const remaining = b.remainingUsd ?? (typeof b.limitUsd === 'number' && typeof spent === 'number' ? b.limitUsd - spent - (typeof reserved === 'number' ? reserved : 0) : undefined);
  return keyValues([
    ['limit', b.limitUsd !== undefined ? formatUsd(b.limitUsd) : 'none'], ['period', b.period], ['spent', spent !== undefined ? formatUsd(spent) : undefined],
    ['reserved', reserved !== undefined ? formatUsd(reserved) : undefined], ['remaining', remaining !== undefined ? formatUsd(remaining) : undefined],
    ...Object.entries(b).filter(([k]) => !known.has(k)).map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : compactJson(v)]),
  ]);
}

export const budgetCommands: CommandSpec[] = [
  {
    path: ['budget', 'get'],
    summary: "show the tenant's budget: limit, period, spent, reserved",
    async run(ctx) {
      const res = await ctx.api().request<Budget>('GET', tenantPath(ctx, 'budget'));
      if (ctx.json) ctx.out.document(res.body);
      else ctx.out.print(show(res.body));
      return EXIT.ok;
    },
  },
  {
    path: ['budget', 'put'],
    summary: "set the tenant's budget",
    options: {
      'limit-usd': { type: 'string', value: 'usd', description: 'spending limit in US dollars per period' },
      period: { type: 'string', value: 'day|month', description: 'budget period (default month)' },
      file: { type: 'string', short: 'f', value: 'path', description: 'the budget document as JSON instead of the flags' },
    },
    async run(ctx, { opts }) {
      let body: unknown;
      if (typeof opts.file === 'string') body = await ctx.readDocument(opts.file, 'budget');
      else {
        const limit = Number(opts['limit-usd']);
        if (opts['limit-usd'] === undefined || !Number.isFinite(limit) || limit < 0) throw new UsageError('--limit-usd must be a non-negative number (or pass --file)', 'budget put');
        const period = (opts.period as string | undefined) ?? 'month';
        if (period !== 'day' && period !== 'month') throw new UsageError("--period must be 'day' or 'month'", 'budget put');
        body = { limitUsd: limit, period };
      }
      const res = await ctx.api().request<Budget>('PUT', tenantPath(ctx, 'budget'), body);
      if (ctx.json) ctx.out.document(res.body);
      else ctx.out.print(`budget set\n${show(res.body ?? (body as Budget))}`);
      return EXIT.ok;
    },
  },
  {
    path: ['budget', 'usage'],
    summary: 'metered usage (cost, calls, tokens) over a time range, optionally grouped',
    options: {
      from: { type: 'string', value: 'date', description: 'start, ISO-8601 date or date-time (default: the start of the month)' },
      to: { type: 'string', value: 'date', description: 'end, exclusive (default: now)' },
      'group-by': { type: 'string', value: 'agent|model|tool', description: 'one row per agent, model or tool' },
    },
    async run(ctx, { opts }) {
      const groupBy = opts['group-by'] as string | undefined;
      if (groupBy !== undefined && !GROUP_BY.includes(groupBy)) throw new UsageError(`--group-by must be one of ${GROUP_BY.join(', ')}`, 'budget usage');
      const res = await ctx.api().request<UsageReport>('GET', withQuery(tenantPath(ctx, 'usage'), { from: opts.from as string | undefined, to: opts.to as string | undefined, groupBy }));
      const u = res.body;
      if (ctx.json) { ctx.out.document(u); return EXIT.ok; }
      ctx.out.print(`usage from ${u.from} to ${u.to}${u.groupBy ? ` by ${u.groupBy}` : ''}`);
      ctx.out.print(table([u.groupBy ? u.groupBy.toUpperCase() : '', 'COST', 'CALLS', 'TOKENS IN', 'TOKENS OUT'], [
        ...u.groups.map((g) => usageRow(g.key, g)), usageRow('total', u.totals),
      ]));
      return EXIT.ok;
    },
  },
];

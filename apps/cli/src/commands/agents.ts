import type { CommandSpec } from '../command.js';
import { EXIT, UsageError } from '../errors.js';
import { compactJson, formatTime, keyValues, table } from '../output.js';
import { tenantPath } from './paths.js';

interface AgentRecord {
  name: string; version: string; planner: string; model?: string; tools: string[];
  limits?: { maxSteps?: number; budgetUsd?: number; approvalTimeoutSeconds?: number }; steps?: Array<{ id: string; tool: string }>; createdAt: string;
}

export const agentCommands: CommandSpec[] = [
  {
    path: ['agents', 'put'],
    summary: 'define an agent version',
    args: [{ name: 'name', description: 'the agent name' }],
    options: { file: { type: 'string', short: 'f', value: 'path', description: 'the definition as JSON (or YAML: .yaml/.yml); - reads stdin' } },
    notes: ['The file holds version, planner (graph, react or an external planner), model, instructions, tools, limits and, for graph, steps.'],
    async run(ctx, { args, opts }) {
      if (typeof opts.file !== 'string') throw new UsageError('--file is required', 'agents put');
      const def = await ctx.readDocument(opts.file, 'agent definition');
      const res = await ctx.api().request<AgentRecord>('PUT', tenantPath(ctx, 'agents', args.name as string), def);
      if (ctx.json) ctx.out.document(res.body);
      else ctx.out.print(res.status === 201
        ? `defined agent ${res.body.name} version ${res.body.version}`
        : `agent ${res.body.name} version ${res.body.version} was already defined with this body`);
      return EXIT.ok;
    },
  },
  {
    path: ['agents', 'get'],
    summary: "show an agent's versions",
    args: [{ name: 'name', description: 'the agent' }],
    async run(ctx, { args }) {
      const res = await ctx.api().request<{ name: string; versions: AgentRecord[] }>('GET', tenantPath(ctx, 'agents', args.name as string));
      if (ctx.json) { ctx.out.document(res.body); return EXIT.ok; }
      const latest = res.body.versions[res.body.versions.length - 1];
      ctx.out.print(keyValues([
        ['agent', res.body.name], ['latest', latest?.version], ['planner', latest?.planner], ['model', latest?.model],
        ['tools', latest?.tools.join(', ') || '-'], ['limits', latest?.limits && Object.keys(latest.limits).length ? compactJson(latest.limits) : undefined],
        ['steps', latest?.steps ? latest.steps.map((s) => `${s.id}(${s.tool})`).join(' → ') : undefined],
      ]));
      ctx.out.print(table(['VERSION', 'PLANNER', 'TOOLS', 'CREATED'], res.body.versions.map((a) => [a.version, a.planner, a.tools.join(',') || '-', formatTime(a.createdAt)])));
      return EXIT.ok;
    },
  },
  {
    path: ['agents', 'list'],
    summary: 'list agents (latest version of each)',
    async run(ctx) {
      const res = await ctx.api().request<{ agents: AgentRecord[] }>('GET', tenantPath(ctx, 'agents'));
      if (ctx.json) { ctx.out.document(res.body); return EXIT.ok; }
      if (!res.body.agents.length) { ctx.out.print('no agents'); return EXIT.ok; }
      ctx.out.print(table(['NAME', 'VERSION', 'PLANNER', 'TOOLS', 'CREATED'], res.body.agents.map((a) => [
        a.name, a.version, a.planner, a.tools.join(',') || '-', formatTime(a.createdAt),
      ])));
      return EXIT.ok;
    },
  },
];

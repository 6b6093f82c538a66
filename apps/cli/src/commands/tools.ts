import type { CommandSpec } from '../command.js';
import { EXIT, UsageError } from '../errors.js';
import { formatTime, keyValues, table } from '../output.js';
import { tenantPath } from './paths.js';

interface ToolRecord {
  name: string; version: string; description?: string; riskTier: string; createdAt: string; digest?: string;
  transport: { kind: string; url?: string; name?: string; tool?: string }; egress?: string[]; timeoutMs?: number; disabled?: boolean;
}

export function transportText(t: ToolRecord['transport'] | undefined): string {
  if (!t) return '-';
  if (t.kind === 'builtin') return `builtin:${t.name}`;
  if (t.kind === 'mcp') return `mcp:${t.url}#${t.tool}`;
  return `${t.kind}:${t.url ?? ''}`;
}

const FILE = { file: { type: 'string', short: 'f', value: 'path', description: 'the definition as JSON (or YAML: .yaml/.yml); - reads stdin' } } as const;

function requireFile(opts: Record<string, unknown>, cmd: string): string {
  if (typeof opts.file !== 'string') throw new UsageError('--file is required', cmd);
  return opts.file;
}

function toggle(disabled: boolean): CommandSpec {
  const verb = disabled ? 'disable' : 'enable';
  return {
    path: ['tools', verb],
    summary: disabled ? 'kill switch: refuse every call of a tool' : 'allow calls of a disabled tool again',
    args: [{ name: 'name', description: 'the tool' }],
    async run(ctx, { args }) {
      const res = await ctx.api().request<{ name: string; disabled: boolean }>('POST', tenantPath(ctx, 'tools', args.name as string, verb));
      if (ctx.json) ctx.out.document(res.body);
      else ctx.out.print(`tool ${res.body.name} ${ctx.out.status(res.body.disabled ? 'disabled' : 'enabled')}`);
      return EXIT.ok;
    },
  };
}

export const toolCommands: CommandSpec[] = [
  {
    path: ['tools', 'put'],
    summary: 'register a tool version (versions are immutable)',
    args: [{ name: 'name', description: 'the tool name' }],
    options: FILE,
    notes: ['The file holds version, description, inputSchema, riskTier, transport, egress, timeoutMs and optionally credential.'],
    async run(ctx, { args, opts }) {
      const def = await ctx.readDocument(requireFile(opts, 'tools put'), 'tool definition');
      const res = await ctx.api().request<ToolRecord>('PUT', tenantPath(ctx, 'tools', args.name as string), def);
      if (ctx.json) ctx.out.document(res.body);
      else ctx.out.print(res.status === 201
        ? `registered tool ${res.body.name} version ${res.body.version}`
        : `tool ${res.body.name} version ${res.body.version} was already registered with this definition`);
      return EXIT.ok;
    },
  },
  {
    path: ['tools', 'list'],
    summary: "list the tenant's tools (latest version of each)",
    async run(ctx) {
      const res = await ctx.api().request<{ tools: ToolRecord[] }>('GET', tenantPath(ctx, 'tools'));
      if (ctx.json) { ctx.out.document(res.body); return EXIT.ok; }
      if (!res.body.tools.length) { ctx.out.print('no tools'); return EXIT.ok; }
      ctx.out.print(table(['NAME', 'VERSION', 'RISK', 'TRANSPORT', 'STATE', 'CREATED'], res.body.tools.map((t) => [
        t.name, t.version, t.riskTier, transportText(t.transport), ctx.out.status(t.disabled ? 'disabled' : 'enabled'), formatTime(t.createdAt),
      ])));
      return EXIT.ok;
    },
  },
  {
    path: ['tools', 'get'],
    summary: "show a tool's versions",
    args: [{ name: 'name', description: 'the tool' }],
    async run(ctx, { args }) {
      const res = await ctx.api().request<{ name: string; versions: ToolRecord[]; disabled: boolean }>('GET', tenantPath(ctx, 'tools', args.name as string));
      if (ctx.json) { ctx.out.document(res.body); return EXIT.ok; }
      const latest = res.body.versions[res.body.versions.length - 1];
      ctx.out.print(keyValues([
        ['tool', res.body.name], ['state', ctx.out.status(res.body.disabled ? 'disabled' : 'enabled')],
        ['description', latest?.description || undefined], ['egress', latest?.egress?.length ? latest.egress.join(', ') : undefined],
      ]));
      ctx.out.print(table(['VERSION', 'RISK', 'TRANSPORT', 'TIMEOUT', 'CREATED'], res.body.versions.map((t) => [
        t.version, t.riskTier, transportText(t.transport), t.timeoutMs !== undefined ? `${t.timeoutMs} ms` : '-', formatTime(t.createdAt),
      ])));
      return EXIT.ok;
    },
  },
  toggle(true),
  toggle(false),
];

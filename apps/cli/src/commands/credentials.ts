import type { CommandSpec } from '../command.js';
import { EXIT, UsageError } from '../errors.js';
import { formatTime, table } from '../output.js';
import { tenantPath } from './paths.js';

/** What the API returns of a credential: metadata only, never secret material. */
interface CredentialView { name: string; kind: string; allowedTools: string[]; scopes: string[]; createdAt: string; updatedAt: string }

export const credentialCommands: CommandSpec[] = [
  {
    path: ['credentials', 'put'],
    summary: 'store a secret for tools to use (never shown again)',
    args: [{ name: 'name', description: 'the credential name' }],
    options: { file: { type: 'string', short: 'f', value: 'path', description: 'kind, secret material, allowedTools, scopes as JSON (or YAML); - reads stdin' } },
    notes: ['The secret is read from the file so it never appears in the shell history or the process list.'],
    async run(ctx, { args, opts }) {
      if (typeof opts.file !== 'string') throw new UsageError('--file is required', 'credentials put');
      const body = await ctx.readDocument(opts.file, 'credential');
      const res = await ctx.api().request<Record<string, unknown> | null>('PUT', tenantPath(ctx, 'credentials', args.name as string), body);
      // Print only what the server returned: it never includes secret material.
      if (ctx.json) ctx.out.document(res.body ?? { name: args.name, stored: true });
      else ctx.out.print(`stored credential ${args.name}`);
      return EXIT.ok;
    },
  },
  {
    path: ['credentials', 'list'],
    summary: "list the tenant's credentials (metadata only: no secret is ever returned)",
    async run(ctx) {
      const res = await ctx.api().request<{ credentials: CredentialView[] }>('GET', tenantPath(ctx, 'credentials'));
      if (ctx.json) { ctx.out.document(res.body); return EXIT.ok; }
      const rows = res.body?.credentials ?? [];
      if (!rows.length) { ctx.out.print('no credentials'); return EXIT.ok; }
      ctx.out.print(table(['NAME', 'KIND', 'TOOLS', 'SCOPES', 'UPDATED'], rows.map((c) => [
        c.name, c.kind, c.allowedTools.join(',') || '-', c.scopes.join(' ') || '-', formatTime(c.updatedAt),
      ])));
      return EXIT.ok;
    },
  },
  {
    path: ['credentials', 'revoke'],
    summary: 'revoke (delete) a credential: the next call of a tool that uses it fails',
    args: [{ name: 'name', description: 'the credential name' }],
    async run(ctx, { args }) {
      await ctx.api().request('DELETE', tenantPath(ctx, 'credentials', args.name as string));
      if (ctx.json) ctx.out.document({ name: args.name, revoked: true });
      else ctx.out.print(`revoked credential ${args.name}`);
      return EXIT.ok;
    },
  },
];

import type { CommandSpec } from '../command.js';
import { EXIT, UsageError } from '../errors.js';
import { tenantPath } from './paths.js';

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
];

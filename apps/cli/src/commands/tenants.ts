import type { CommandSpec } from '../command.js';
import { EXIT } from '../errors.js';
import { formatTime, keyValues } from '../output.js';

interface Tenant { id: string; name?: string; createdAt?: string }

export const tenantCommands: CommandSpec[] = [
  {
    path: ['tenants', 'create'],
    summary: 'create a tenant (needs the platform admin key)',
    args: [{ name: 'id', description: 'tenant id: lower-case letters, digits and dashes' }],
    options: { name: { type: 'string', value: 'name', description: 'display name (default: the id)' } },
    async run(ctx, { args, opts }) {
      const body = { id: args.id, ...(opts.name ? { name: opts.name } : {}) };
      const res = await ctx.api().request<Tenant>('POST', '/v1/tenants', body);
      if (ctx.json) ctx.out.document(res.body);
      else ctx.out.print(`created tenant ${res.body.id}\n${keyValues([['name', res.body.name], ['created', formatTime(res.body.createdAt)]])}`);
      return EXIT.ok;
    },
  },
];

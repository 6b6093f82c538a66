import type { CommandSpec } from '../command.js';
import { EXIT, UsageError } from '../errors.js';
import { formatTime, keyValues } from '../output.js';
import { tenantPath } from './paths.js';

interface IssuedKey { id: string; key: string; tenantId: string; name?: string; roles: string[]; createdAt: string }

const ROLES = ['owner', 'developer', 'operator', 'approver', 'viewer'];

/** `owner,viewer` → ['owner', 'viewer'], refusing unknown roles before asking the server. */
export function parseRoles(raw: string | undefined): string[] {
  const roles = (raw ?? '').split(',').map((r) => r.trim()).filter(Boolean);
  if (!roles.length) throw new UsageError('--roles needs at least one role', 'keys issue');
  const bad = roles.filter((r) => !ROLES.includes(r));
  if (bad.length) throw new UsageError(`unknown role ${bad.map((r) => `'${r}'`).join(', ')} (roles: ${ROLES.join(', ')})`, 'keys issue');
  return [...new Set(roles)];
}

export const keyCommands: CommandSpec[] = [
  {
    path: ['keys', 'issue'],
    summary: 'issue an API key for the tenant (the key is shown once)',
    options: {
      roles: { type: 'string', value: 'roles', description: `comma-separated roles: ${ROLES.join(', ')}` },
      name: { type: 'string', value: 'name', description: 'a label for the key' },
    },
    async run(ctx, { opts }) {
      const roles = parseRoles(opts.roles as string | undefined);
      const res = await ctx.api().request<IssuedKey>('POST', tenantPath(ctx, 'api-keys'), { roles, ...(opts.name ? { name: opts.name } : {}) });
      const k = res.body;
      if (ctx.json) { ctx.out.document(k); return EXIT.ok; }
      ctx.out.print(keyValues([
        ['id', k.id], ['tenant', k.tenantId], ['name', k.name || undefined], ['roles', k.roles.join(', ')], ['created', formatTime(k.createdAt)], ['key', k.key],
      ]));
      ctx.out.warn('the key is shown only this once: store it now');
      return EXIT.ok;
    },
  },
  {
    path: ['keys', 'revoke'],
    summary: 'revoke an API key',
    args: [{ name: 'id', description: 'the key id (not the key itself)' }],
    async run(ctx, { args }) {
      await ctx.api().request('DELETE', tenantPath(ctx, 'api-keys', args.id as string));
      if (ctx.json) ctx.out.document({ id: args.id, revoked: true });
      else ctx.out.print(`revoked key ${args.id}`);
      return EXIT.ok;
    },
  },
];

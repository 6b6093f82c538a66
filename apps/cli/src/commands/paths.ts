import type { Context } from '../command.js';

const enc = encodeURIComponent;

/** `/v1/tenants/<tenant>/<segments...>`, each segment URL-encoded. */
export function tenantPath(ctx: Context, ...segments: string[]): string {
  return [`/v1/tenants/${enc(ctx.tenant())}`, ...segments.map(enc)].join('/');
}

/** Adds the defined query parameters to a path. */
export function withQuery(path: string, q: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}

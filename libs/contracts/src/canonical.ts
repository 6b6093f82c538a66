import { createHash } from 'node:crypto';

/** Canonical JSON (object keys sorted), so equal documents serialise and hash equally. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export const digestOf = (v: unknown): string => createHash('sha256').update(canonicalJson(v)).digest('hex');

/**
 * The hash an approval is bound to: sha256 of the canonical `{tool: "name@version", args}`. A
 * granted approval lets exactly that call proceed; any other version or argument needs its own.
 */
export const approvalArgsHash = (tool: { name: string; version: string }, args: unknown): string =>
  digestOf({ tool: `${tool.name}@${tool.version}`, args: args ?? null });

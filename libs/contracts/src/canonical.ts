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

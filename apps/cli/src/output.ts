/**
 * Output formatting for the CLI: aligned tables, key/value blocks, run-status colour (only when
 * stdout is a terminal and NO_COLOR is unset), durations, JSON documents and NDJSON lines.
 * Pure string building plus one `Output` object that writes to the injected streams.
 */

/** The part of a writable stream the CLI uses; `isTTY` decides colour and live progress. */
export interface OutStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
const CODES = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, gray: 90, bold: 1 } as const;
export type Colour = keyof typeof CODES;

/** Visible width of a string: ANSI escapes take no room. */
export const visibleLength = (s: string): number => s.replace(ANSI, '').length;
export const stripAnsi = (s: string): string => s.replace(ANSI, '');

export function paint(s: string, colour: Colour, enabled: boolean): string {
  return enabled ? `\x1b[${CODES[colour]}m${s}\x1b[0m` : s;
}

const STATUS_COLOURS: Record<string, Colour> = {
  queued: 'gray', running: 'cyan', waiting_approval: 'magenta', completed: 'green', failed: 'red', cancelled: 'yellow',
  pending: 'magenta', approved: 'green', denied: 'red', expired: 'yellow', enabled: 'green', disabled: 'red',
};

/** A run (or approval, or tool) status, coloured when colour is enabled. */
export function statusText(status: string, colour: boolean): string {
  const c = STATUS_COLOURS[status];
  return c ? paint(status, c, colour) : status;
}

/** Columns aligned on the widest cell; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => visibleLength(r[i] ?? ''))));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i] - visibleLength(c)))).join('  ').trimEnd();
  return `${all.map(line).join('\n')}\n`;
}

/** `key: value` lines with the values aligned; undefined values are left out. */
export function keyValues(pairs: Array<[string, string | undefined]>): string {
  const shown = pairs.filter((p): p is [string, string] => p[1] !== undefined);
  const w = Math.max(0, ...shown.map(([k]) => k.length + 1));
  return shown.map(([k, v]) => `${`${k}:`.padEnd(w)}  ${v}`).join('\n') + '\n';
}

/** `12 ms`, `1.25 s`, `2m 03s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.floor((ms % 60_000) / 1000);
  return `${m}m ${String(s).padStart(2, '0')}s`;
}

/** An ISO instant as `2024-05-01 12:00:03` (UTC, no fraction). */
export function formatTime(iso: unknown): string {
  if (typeof iso !== 'string' || !iso) return '-';
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(iso);
  return m ? `${m[1]} ${m[2]}` : iso;
}

export function formatUsd(usd: unknown): string {
  return typeof usd === 'number' ? `$${usd.toFixed(usd !== 0 && usd < 0.01 ? 6 : 4)}` : '-';
}

/** Compact JSON, cut to `max` characters with an ellipsis. */
export function compactJson(v: unknown, max = Infinity): string {
  const s = JSON.stringify(v) ?? 'null';
  return s.length > max ? `${s.slice(0, Math.max(0, max - 1))}…` : s;
}

/** The writer every command prints through. */
export class Output {
  readonly colour: boolean;
  readonly tty: boolean;
  constructor(readonly stdout: OutStream, readonly stderr: OutStream, readonly json: boolean, env: Record<string, string | undefined>) {
    this.tty = stdout.isTTY === true;
    this.colour = this.tty && !env.NO_COLOR && env.TERM !== 'dumb';
  }
  print(text: string): void {
    this.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }
  /** One JSON document (the `--json` output of a command). */
  document(v: unknown): void {
    this.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  }
  /** One NDJSON line (tail, journal). */
  line(v: unknown): void {
    this.stdout.write(`${JSON.stringify(v)}\n`);
  }
  warn(text: string): void {
    this.stderr.write(`${text}\n`);
  }
  status(s: string): string {
    return statusText(s, this.colour);
  }
  paint(s: string, c: Colour): string {
    return paint(s, c, this.colour);
  }
}

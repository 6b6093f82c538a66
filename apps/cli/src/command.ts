import { parseArgs } from 'node:util';
import type { ApiClient } from './client.js';
import { UsageError } from './errors.js';
import type { Output } from './output.js';

/** One option of a command (a `node:util` parseArgs option plus help text). */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder in help: `--file <path>`. */
  value?: string;
  description: string;
}

export interface ArgSpec {
  name: string;
  description: string;
  optional?: boolean;
}

export type OptionValues = Record<string, string | boolean | undefined>;

export interface CommandInput {
  /** Positional arguments by name. */
  args: Record<string, string | undefined>;
  opts: OptionValues;
}

/** What a command gets to work with. */
export interface Context {
  out: Output;
  json: boolean;
  env: Readonly<Record<string, string | undefined>>;
  /** The API client; a usage error when no key was given. */
  api(): ApiClient;
  /** The tenant from --tenant or AGENTMESH_TENANT; a usage error when neither is set. */
  tenant(): string;
  /** A file's text (`-` reads stdin). */
  readText(path: string): Promise<string>;
  /** A JSON (or, by extension, YAML) document from a file. */
  readDocument(path: string, what: string): Promise<unknown>;
}

export interface CommandSpec {
  /** The command words: `['runs', 'start']`, `['journal']`. */
  path: readonly string[];
  summary: string;
  args?: readonly ArgSpec[];
  options?: Readonly<Record<string, OptionSpec>>;
  /** Extra help paragraphs (examples, output, exit codes). */
  notes?: readonly string[];
  run(ctx: Context, input: CommandInput): Promise<number>;
}

export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  url: { type: 'string', value: 'url', description: 'gateway base URL (env AGENTMESH_URL, default http://127.0.0.1:8080)' },
  key: { type: 'string', value: 'key', description: 'API key (env AGENTMESH_API_KEY)' },
  'key-file': { type: 'string', value: 'path', description: 'read the API key from a file (env AGENTMESH_API_KEY_FILE)' },
  tenant: { type: 'string', short: 't', value: 'id', description: 'tenant id (env AGENTMESH_TENANT)' },
  json: { type: 'boolean', description: 'machine-readable output: one JSON document (NDJSON for streams)' },
  help: { type: 'boolean', short: 'h', description: 'show help for a command' },
};

/** Global options that take a value (their value is skipped when looking for command words). */
const VALUE_FLAGS = new Set(
  Object.entries(GLOBAL_OPTIONS).filter(([, o]) => o.type === 'string').flatMap(([n, o]) => [`--${n}`, ...(o.short ? [`-${o.short}`] : [])]),
);

export interface Located {
  /** The command words found (a whole command, a group, or nothing). */
  words: string[];
  command: CommandSpec | undefined;
  /** Everything else, in order, for the option parser. */
  rest: string[];
  help: boolean;
}

const startsWith = (path: readonly string[], prefix: readonly string[]) => prefix.every((w, i) => path[i] === w);

/**
 * Finds the command words in argv. Global options may come anywhere; words that do not extend a
 * known command are left for the command's positional arguments.
 */
export function locate(argv: readonly string[], commands: readonly CommandSpec[]): Located {
  const words: string[] = [];
  const rest: string[] = [];
  let command: CommandSpec | undefined;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i];
    if (tok === '--') { rest.push(...argv.slice(i)); break; }
    if (tok.startsWith('-') && tok !== '-') {
      if (tok === '--help' || tok === '-h') help = true;
      rest.push(tok);
      if (VALUE_FLAGS.has(tok) && i + 1 < argv.length) rest.push(argv[++i]);
      continue;
    }
    if (!command && commands.some((c) => startsWith(c.path, [...words, tok]))) {
      words.push(tok);
      command = commands.find((c) => c.path.length === words.length && startsWith(c.path, words));
      continue;
    }
    rest.push(tok);
  }
  return { words, command, rest, help };
}

/** Parses a command's options and positionals (global options included); usage errors name the command. */
export function parseCommand(cmd: CommandSpec, rest: readonly string[]): { input: CommandInput; globals: OptionValues } {
  const spec = { ...GLOBAL_OPTIONS, ...(cmd.options ?? {}) };
  const options = Object.fromEntries(Object.entries(spec).map(([name, o]) => [name, o.short ? { type: o.type, short: o.short } : { type: o.type }]));
  const name = cmd.path.join(' ');
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...rest], options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '').replace(/^Option '(.*?)' argument missing$/, "option '$1' needs a value");
    throw new UsageError(msg.charAt(0).toLowerCase() + msg.slice(1), name, { cause: e });
  }
  const argSpecs = cmd.args ?? [];
  const required = argSpecs.filter((a) => !a.optional).length;
  if (parsed.positionals.length > argSpecs.length) throw new UsageError(`unexpected argument '${parsed.positionals[argSpecs.length]}'`, name);
  if (parsed.positionals.length < required) throw new UsageError(`missing <${argSpecs[parsed.positionals.length].name}>`, name);
  const args = Object.fromEntries(argSpecs.map((a, i) => [a.name, parsed.positionals[i]]));
  const globals: OptionValues = {};
  const opts: OptionValues = {};
  for (const [k, v] of Object.entries(parsed.values)) {
    if (k in GLOBAL_OPTIONS) globals[k] = v as string | boolean;
    if (cmd.options && k in cmd.options) opts[k] = v as string | boolean;
  }
  return { input: { args, opts }, globals };
}

// ---------------------------------------------------------------------------------------------
// help

const synopsis = (c: CommandSpec) => [
  'agentmesh', ...c.path, ...(c.args ?? []).map((a) => (a.optional ? `[${a.name}]` : `<${a.name}>`)),
  ...(c.options && Object.keys(c.options).length ? ['[options]'] : []),
].join(' ');

function optionRows(opts: Readonly<Record<string, OptionSpec>>): Array<[string, string]> {
  return Object.entries(opts).map(([n, o]) => [`${o.short ? `-${o.short}, ` : ''}--${n}${o.value ? ` <${o.value}>` : ''}`, o.description]);
}

function columns(rows: Array<[string, string]>): string {
  const w = Math.max(0, ...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(w)}  ${r}`).join('\n');
}

const EXIT_CODES = [
  'Exit codes:',
  '  0  success',
  '  1  the run failed or was cancelled (runs tail, runs start --follow); replay found a divergence',
  '  2  client error: bad arguments, or a 4xx problem from the API',
  '  3  server error or unreachable server (5xx, network)',
].join('\n');

export function rootHelp(commands: readonly CommandSpec[]): string {
  return [
    'agentmesh: command-line client for the agentmesh REST API',
    '',
    'Usage: agentmesh <command> [arguments] [options]',
    '',
    'Commands:',
    columns(commands.map((c) => [[...c.path, ...(c.args ?? []).map((a) => (a.optional ? `[${a.name}]` : `<${a.name}>`))].join(' '), c.summary])),
    '',
    'Global options:',
    columns(optionRows(GLOBAL_OPTIONS)),
    '',
    'Errors from the API are printed on stderr as `error: <detail> (<code>)`.',
    EXIT_CODES,
    '',
    "Run 'agentmesh <command> --help' for a command's options.",
    '',
  ].join('\n');
}

export function groupHelp(group: string, commands: readonly CommandSpec[]): string {
  const mine = commands.filter((c) => c.path[0] === group);
  return [
    `Usage: agentmesh ${group} <command> [options]`,
    '',
    'Commands:',
    columns(mine.map((c) => [synopsis(c).replace(/^agentmesh /, ''), c.summary])),
    '',
    'Global options:',
    columns(optionRows(GLOBAL_OPTIONS)),
    '',
  ].join('\n');
}

export function commandHelp(c: CommandSpec): string {
  const parts = [`Usage: ${synopsis(c)}`, '', c.summary];
  if (c.args?.length) parts.push('', 'Arguments:', columns(c.args.map((a) => [a.name, a.description])));
  if (c.options && Object.keys(c.options).length) parts.push('', 'Options:', columns(optionRows(c.options)));
  parts.push('', 'Global options:', columns(optionRows(GLOBAL_OPTIONS)));
  if (c.notes?.length) parts.push('', ...c.notes);
  parts.push('');
  return parts.join('\n');
}

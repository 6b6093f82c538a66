import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ApiClient, type FetchFn } from './client.js';
import { commandHelp, groupHelp, locate, parseCommand, rootHelp, type CommandSpec, type Context, type OptionValues } from './command.js';
import { COMMANDS } from './commands/index.js';
import { describeError, EXIT, UsageError } from './errors.js';
import { Output, type OutStream } from './output.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** Everything runCli touches outside itself, so tests can drive it in-process. */
export interface CliIO {
  stdout: OutStream;
  stderr: OutStream;
  env: Readonly<Record<string, string | undefined>>;
  /** For `--file -` and friends. */
  stdin?: AsyncIterable<Uint8Array | string>;
  /** Relative file paths resolve against this (default: the process's working directory). */
  cwd?: string;
  fetch?: FetchFn;
}

async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<string> {
  const parts: string[] = [];
  const decoder = new TextDecoder();
  for await (const chunk of stream) parts.push(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
  parts.push(decoder.decode());
  return parts.join('');
}

/** Reads a file relative to the CLI's working directory; `-` reads stdin. */
function textReader(io: CliIO, command: string): (path: string) => Promise<string> {
  const cwd = io.cwd ?? process.cwd();
  return async (path) => {
    if (path === '-') {
      if (!io.stdin) throw new UsageError('cannot read stdin here', command);
      return readAll(io.stdin);
    }
    try {
      return await readFile(resolve(cwd, path), 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, command, { cause: e });
    }
  };
}

/** --key, else --key-file, else AGENTMESH_API_KEY, else AGENTMESH_API_KEY_FILE. */
async function resolveKey(globals: OptionValues, env: CliIO['env'], readText: (p: string) => Promise<string>): Promise<string | undefined> {
  if (typeof globals.key === 'string' && globals.key) return globals.key;
  const file = typeof globals['key-file'] === 'string' ? globals['key-file'] : env.AGENTMESH_API_KEY ? undefined : env.AGENTMESH_API_KEY_FILE;
  if (file) return (await readText(file)).trim() || undefined;
  return env.AGENTMESH_API_KEY || undefined;
}

function makeContext(cmd: CommandSpec, globals: OptionValues, io: CliIO, out: Output, key: string | undefined): Context {
  const name = cmd.path.join(' ');
  const env = io.env;
  const readText = textReader(io, name);
  let client: ApiClient | undefined;
  return {
    out,
    json: globals.json === true,
    env,
    readText,
    async readDocument(path, what) {
      const text = await readText(path);
      const yaml = /\.ya?ml$/i.test(path);
      try {
        return yaml ? parseYaml(text) as unknown : JSON.parse(text) as unknown;
      } catch (e) {
        throw new UsageError(`the ${what} in ${path === '-' ? 'stdin' : path} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(e as Error).message}`, name, { cause: e });
      }
    },
    api() {
      if (!client) {
        if (key === undefined) throw new UsageError('no API key: pass --key or --key-file, or set AGENTMESH_API_KEY', name);
        client = new ApiClient(String(globals.url ?? env.AGENTMESH_URL ?? DEFAULT_URL), key, io.fetch ?? fetch);
      }
      return client;
    },
    tenant() {
      const t = (globals.tenant as string | undefined) ?? env.AGENTMESH_TENANT;
      if (!t) throw new UsageError('no tenant: pass --tenant or set AGENTMESH_TENANT', name);
      return t;
    },
  };
}

/**
 * Runs one CLI invocation and returns its exit code: 0 ok, 1 run failed or replay diverged,
 * 2 client error (usage, 4xx), 3 server error or unreachable (5xx, network).
 */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const loc = locate(argv, COMMANDS);
  const jsonWanted = loc.rest.includes('--json');
  const out = new Output(io.stdout, io.stderr, jsonWanted, io.env);
  try {
    if (!loc.command) {
      const text = loc.words.length ? groupHelp(loc.words[0], COMMANDS) : rootHelp(COMMANDS);
      if (loc.help) { out.print(text); return EXIT.ok; }
      const unknown = loc.rest.find((t) => !t.startsWith('-'));
      const message = unknown !== undefined ? `unknown command '${[...loc.words, unknown].join(' ')}'`
        : loc.words.length ? `'${loc.words[0]}' needs a command` : 'no command given';
      io.stderr.write(`error: ${message} (usage)\n\n${text}`);
      return EXIT.client;
    }
    if (loc.help) { out.print(commandHelp(loc.command)); return EXIT.ok; }
    const { input, globals } = parseCommand(loc.command, loc.rest);
    const key = await resolveKey(globals, io.env, textReader(io, loc.command.path.join(' ')));
    return await loc.command.run(makeContext(loc.command, globals, io, out, key), input);
  } catch (e) {
    const { lines, exitCode } = describeError(e);
    io.stderr.write(`${lines.join('\n')}\n`);
    return exitCode;
  }
}

import { describe, expect, it } from '@jest/globals';
import { commandHelp, locate, parseCommand, rootHelp, type CommandSpec } from './command.js';
import { COMMANDS } from './commands/index.js';
import { UsageError } from './errors.js';

const find = (path: string) => COMMANDS.find((c) => c.path.join(' ') === path) as CommandSpec;

describe('finding the command in argv', () => {
  it('takes the command words and leaves the rest, in order, for the option parser', () => {
    const l = locate(['runs', 'start', 'hello', '--input', '{"a":1}', '--follow'], COMMANDS);
    expect(l.command?.path).toEqual(['runs', 'start']);
    expect(l.rest).toEqual(['hello', '--input', '{"a":1}', '--follow']);
  });

  it('accepts global options before the command and skips their values', () => {
    const l = locate(['--url', 'http://x:1', '-t', 'runs', '--json', 'runs', 'list'], COMMANDS);
    expect(l.command?.path).toEqual(['runs', 'list']);
    expect(l.rest).toEqual(['--url', 'http://x:1', '-t', 'runs', '--json']);
  });

  it('treats a word after a whole command as an argument even when it names a subcommand', () => {
    const l = locate(['tools', 'get', 'disable'], COMMANDS);
    expect(l.command?.path).toEqual(['tools', 'get']);
    expect(l.rest).toEqual(['disable']);
  });

  it('reports a bare group, and notices --help anywhere', () => {
    expect(locate(['runs'], COMMANDS)).toMatchObject({ words: ['runs'], command: undefined, help: false });
    expect(locate(['runs', 'start', '-h'], COMMANDS)).toMatchObject({ help: true });
    expect(locate(['replay', '--', '--help'], COMMANDS)).toMatchObject({ help: false, rest: ['--', '--help'] });
  });
});

describe('parsing a command line', () => {
  it('splits positionals, command options and global options', () => {
    const { input, globals } = parseCommand(find('runs start'), ['hello', '--input', '{}', '--json', '--tenant', 'acme', '-F', '--idempotency-key=k1']);
    expect(input).toEqual({ args: { agent: 'hello' }, opts: { input: '{}', follow: true, 'idempotency-key': 'k1' } });
    expect(globals).toEqual({ json: true, tenant: 'acme' });
  });

  it('refuses unknown options, missing values, missing and extra arguments with a usage error naming the command', () => {
    const err = (cmd: string, rest: string[]) => { try { parseCommand(find(cmd), rest); } catch (e) { return e as UsageError; } throw new Error('no error'); };
    expect(err('runs list', ['--bogus'])).toMatchObject({ code: 'usage', exitCode: 2, helpFor: 'runs list' });
    expect(err('runs list', ['--bogus']).message).toContain("'--bogus'");
    expect(err('runs list', ['--status']).message).toContain('--status');
    expect(err('runs get', []).message).toBe('missing <id>');
    expect(err('runs get', ['a', 'b']).message).toBe("unexpected argument 'b'");
  });

  it('lets optional arguments be left out', () => {
    expect(parseCommand(find('replay'), ['--from-file', 'j.ndjson']).input).toEqual({ args: { runId: undefined }, opts: { 'from-file': 'j.ndjson' } });
  });
});

describe('help', () => {
  it('lists every command at the top level with the exit codes', () => {
    const h = rootHelp(COMMANDS);
    for (const c of COMMANDS) expect(h).toContain(c.path.join(' '));
    expect(h).toMatch(/Exit codes:[\s\S]*2 {2}client error[\s\S]*3 {2}server error/);
  });

  it("shows a command's arguments, options and the global options", () => {
    const h = commandHelp(find('runs start'));
    expect(h).toContain('Usage: agentmesh runs start <agent> [options]');
    for (const o of ['--input <json>', '--input-file <path>', '--session <id>', '--idempotency-key <key>', '-F, --follow', '--url <url>', '--key-file <path>', '--json']) expect(h).toContain(o);
  });

  it('has a summary for every command and a description for every option', () => {
    for (const c of COMMANDS) {
      expect(c.summary).toBeTruthy();
      for (const o of Object.values(c.options ?? {})) expect(o.description).toBeTruthy();
    }
  });
});

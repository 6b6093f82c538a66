import { describe, expect, it } from '@jest/globals';
import { OptionsError, parseOptions } from './options.js';

describe('the command line of the config-assistant process', () => {
  it('defaults to the local mesh and the name config-assistant, serving every tenant', () => {
    expect(parseOptions([], {})).toEqual({ servers: ['nats://127.0.0.1:4222'], name: 'config-assistant', tenants: [], help: false });
  });

  it('takes the NATS URL and the name from the environment, and flags over the environment', () => {
    expect(parseOptions([], { NATS_URL: 'nats://a:4222,nats://b:4222', PLANNER_NAME: 'cfg' })).toMatchObject({ servers: ['nats://a:4222', 'nats://b:4222'], name: 'cfg' });
    expect(parseOptions(['--nats', 'nats://c:1', '--name', 'x', '--tenant', 'acme', '--tenant', 'globex', '--write-tool', 'cfg_set'], { NATS_URL: 'nats://a:4222' }))
      .toEqual({ servers: ['nats://c:1'], name: 'x', tenants: ['acme', 'globex'], writeTool: 'cfg_set', help: false });
  });

  it('takes NATS credentials from the environment only', () => {
    expect(parseOptions([], { NATS_USER: 'cfg', NATS_PASSWORD: 'pw' })).toMatchObject({ user: 'cfg', pass: 'pw' });
    expect(parseOptions([], { NATS_TOKEN: 'tok' })).toMatchObject({ token: 'tok' });
    expect(() => parseOptions(['--pass', 'pw'], {})).toThrow(OptionsError);
  });

  it('refuses unknown flags with a usage error', () => {
    expect(() => parseOptions(['--bogus'], {})).toThrow(OptionsError);
  });
});

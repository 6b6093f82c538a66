import { describe, expect, it } from '@jest/globals';
import { parseIntent, parseValue } from './intent.js';

describe('reading what the user said', () => {
  it('reads "set <key> to <value>" and its variants as a change with a typed value', () => {
    expect(parseIntent('set timeout to 30')).toEqual({ kind: 'set', key: 'timeout', value: 30 });
    expect(parseIntent({ text: 'Please change log.level to "debug"' })).toEqual({ kind: 'set', key: 'log.level', value: 'debug' });
    expect(parseIntent('update cache_enabled = false')).toEqual({ kind: 'set', key: 'cache_enabled', value: false });
    expect(parseIntent('max-connections: 200')).toEqual({ kind: 'set', key: 'max-connections', value: 200 });
    expect(parseIntent('region = eu west 1')).toEqual({ kind: 'set', key: 'region', value: 'eu west 1' });
  });

  it('reads "set <key>" without a value as a change that still needs its value', () => {
    expect(parseIntent('set retries')).toEqual({ kind: 'set', key: 'retries' });
  });

  it('reads confirmations and refusals, in text or as structured input', () => {
    for (const t of ['yes', 'Y', 'confirm', 'apply', 'ok!', 'go ahead']) expect(parseIntent(t)).toEqual({ kind: 'confirm' });
    for (const t of ['no', 'N', 'cancel', 'discard.', 'never mind']) expect(parseIntent(t)).toEqual({ kind: 'reject' });
    expect(parseIntent({ confirm: true })).toEqual({ kind: 'confirm' });
    expect(parseIntent({ confirm: false })).toEqual({ kind: 'reject' });
    expect(parseIntent({ set: { key: 'timeout', value: [1, 2] } })).toEqual({ kind: 'set', key: 'timeout', value: [1, 2] });
  });

  it('leaves anything else as text, and refuses keys that are not configuration keys', () => {
    expect(parseIntent('what can you do?')).toEqual({ kind: 'other', text: 'what can you do?' });
    expect(parseIntent('  42 ')).toEqual({ kind: 'other', text: '42' });
    expect(parseIntent({ set: { key: '1bad', value: 1 } })).toMatchObject({ kind: 'other' });
  });

  it('types values: numbers, booleans, null, quoted text, plain text', () => {
    expect([parseValue('-1.5'), parseValue('TRUE'), parseValue('null'), parseValue("'007'"), parseValue('fast')]).toEqual([-1.5, true, null, '007', 'fast']);
  });
});

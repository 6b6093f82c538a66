import { describe, expect, it } from '@jest/globals';
import { promptBlockKeys, renderPrompt, type ChatMessage } from './prompt.js';
import { matchScript, parseScript, type ScriptRule } from './script.js';

describe('prompt rendering and block keys', () => {
  const turn1: ChatMessage[] = [
    { role: 'system', content: 'You are helpful. '.repeat(40) },
    { role: 'user', content: 'Find the weather.' },
  ];
  const turn2: ChatMessage[] = [
    ...turn1,
    { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'weather', arguments: '{}' } }] },
    { role: 'tool', tool_call_id: 'c1', content: '{"temp": 3}' },
  ];

  it('renders a later turn as an extension of the earlier one, so its block keys share a prefix', () => {
    const a = renderPrompt(turn1);
    const b = renderPrompt(turn2);
    const prefix = a.slice(0, a.length - '<|assistant|>\n'.length);
    expect(b.startsWith(prefix)).toBe(true);
    const ka = promptBlockKeys(a, 16, 4);
    const kb = promptBlockKeys(b, 16, 4);
    expect(ka.length).toBe(Math.floor(a.length / 64));
    expect(kb.slice(0, ka.length - 1)).toEqual(ka.slice(0, ka.length - 1));
  });

  it('gives different keys to the same block text after a different prefix', () => {
    const x = promptBlockKeys('A'.repeat(64) + 'B'.repeat(64), 16, 4);
    const y = promptBlockKeys('C'.repeat(64) + 'B'.repeat(64), 16, 4);
    expect(x[1]).not.toBe(y[1]);
    expect(Number.isSafeInteger(x[1])).toBe(true);
  });
});

describe('scripted replies', () => {
  const rules: ScriptRule[] = parseScript([
    { match: { role: 'tool', contains: 'temp' }, reply: { content: 'done' } },
    { match: { role: 'user', pattern: '^find', flags: 'i' }, reply: { tool_calls: [{ name: 'search', arguments: { q: 'x' } }] } },
  ]);

  it('matches the last user or tool message, first rule wins', () => {
    expect(matchScript(rules, [{ role: 'user', content: 'Find it' }])?.tool_calls?.[0].name).toBe('search');
    expect(matchScript(rules, [{ role: 'user', content: 'Find it' }, { role: 'assistant', content: 'ok' }])?.tool_calls).toBeDefined();
    expect(matchScript(rules, [{ role: 'user', content: 'Find it' }, { role: 'tool', content: '{"temp":1}' }])?.content).toBe('done');
    expect(matchScript(rules, [{ role: 'user', content: 'hello' }])).toBeUndefined();
  });

  it('accepts function matchers and rejects malformed scripts', () => {
    expect(matchScript([{ match: (m) => m.role === 'user', reply: { content: 'hi' } }], [{ role: 'user', content: '' }])?.content).toBe('hi');
    expect(() => parseScript({})).toThrow(TypeError);
    expect(() => parseScript([{ match: { role: 'system' }, reply: {} }])).toThrow(TypeError);
    expect(() => parseScript([{ match: {}, reply: { tool_calls: [{ arguments: {} }] } }])).toThrow(TypeError);
  });
});

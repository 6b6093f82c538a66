import { describe, expect, it } from '@jest/globals';
import { countCompletionTokens, countPromptTokens, countTextTokens, encodingFor, estimatePromptTokens } from './index.js';

describe('token counts', () => {
  it('picks o200k_base for newer OpenAI models and cl100k_base otherwise (auto included)', () => {
    expect(encodingFor('gpt-4o-mini')).toBe('o200k_base');
    expect(encodingFor('o3')).toBe('o200k_base');
    expect(encodingFor('llama-3-70b')).toBe('cl100k_base');
    expect(encodingFor(undefined)).toBe('cl100k_base');
  });

  it('counts text with the real tokenizer (cl100k_base: "hello world" is 2 tokens)', async () => {
    expect(await countTextTokens('sim-8b', 'hello world')).toBe(2);
    expect(await countTextTokens('sim-8b', '')).toBe(0);
  });

  it('counts a chat prompt as OpenAI accounts for it: 3 per message, 3 priming, tools as JSON', async () => {
    const one = await countPromptTokens('sim-8b', [{ role: 'user', content: 'hello world' }]);
    expect(one).toBe(3 + 3 + 1 + 2); // priming + per message + "user" + "hello world"
    const withTools = await countPromptTokens('sim-8b', [{ role: 'user', content: 'hello world' }], [
      { type: 'function', function: { name: 'echo', parameters: { type: 'object' } } },
    ]);
    expect(withTools).toBeGreaterThan(one);
  });

  it('counts a reply with tool calls, never less than one token', async () => {
    expect(await countCompletionTokens('sim-8b', { content: null })).toBe(1);
    const n = await countCompletionTokens('sim-8b', { content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'echo', arguments: '{"text":"hi"}' } }] });
    expect(n).toBeGreaterThan(3);
  });

  it('estimates about four characters a token without the tokenizer', () => {
    expect(estimatePromptTokens([{ role: 'user', content: 'x'.repeat(400) }])).toBe(Math.ceil((400 + 16) / 4));
  });
});

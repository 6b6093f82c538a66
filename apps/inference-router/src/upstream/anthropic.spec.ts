import { describe, expect, it } from '@jest/globals';
import { AnthropicStreamError, AnthropicStreamTranslator, fromAnthropicResponse, toAnthropicRequest, toolInput, usageOf } from './anthropic.js';
import { ChunkAccumulator, type ChatCompletionRequest } from './types.js';

const weatherTool = { type: 'function' as const, function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };

describe('the Anthropic adapter translating requests', () => {
  it('moves system and developer messages into system and keeps user text', () => {
    const req: ChatCompletionRequest = {
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'developer', content: 'Answer in French.' },
        { role: 'user', content: 'Hello' },
      ],
      max_tokens: 100,
    };
    expect(toAnthropicRequest(req, 'claude-sonnet-4', false)).toEqual({
      model: 'claude-sonnet-4',
      max_tokens: 100,
      system: 'You are terse.\n\nAnswer in French.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }],
    });
  });

  it('sets max_tokens when the request has none, and maps sampling, stop, user and stream', () => {
    const out = toAnthropicRequest({ messages: [{ role: 'user', content: 'x' }], temperature: 1.6, top_p: 0.9, stop: 'END', user: 'u-1' }, 'm', true);
    expect(out).toMatchObject({ max_tokens: 4096, temperature: 1, top_p: 0.9, stop_sequences: ['END'], metadata: { user_id: 'u-1' }, stream: true });
    expect(toAnthropicRequest({ messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 7, max_tokens: 9 }, 'm', false).max_tokens).toBe(7);
  });

  it('translates tools, tool choices, assistant tool calls and tool results', () => {
    const req: ChatCompletionRequest = {
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: 'Checking.',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' },
        { role: 'tool', tool_call_id: 'call_2', content: '{"temp":25}' },
        { role: 'user', content: 'Which is warmer?' },
      ],
      tools: [weatherTool],
      tool_choice: 'required',
      parallel_tool_calls: false,
    };
    const out = toAnthropicRequest(req, 'claude-sonnet-4', false);
    expect(out.tools).toEqual([{ name: 'get_weather', description: 'Weather of a city', input_schema: weatherTool.function.parameters }]);
    expect(out.tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true });
    expect(out.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Rome?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'get_weather', input: { city: 'Rome' } },
        ],
      },
      // both tool results and the next user text in one user turn, results first
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '{"temp":21}' },
          { type: 'tool_result', tool_use_id: 'call_2', content: '{"temp":25}' },
          { type: 'text', text: 'Which is warmer?' },
        ],
      },
    ]);
  });

  it('maps every OpenAI tool_choice and leaves it out without tools', () => {
    const base = { messages: [{ role: 'user' as const, content: 'x' }], tools: [weatherTool] };
    expect(toAnthropicRequest({ ...base, tool_choice: 'auto' }, 'm', false).tool_choice).toEqual({ type: 'auto' });
    expect(toAnthropicRequest({ ...base, tool_choice: 'none' }, 'm', false).tool_choice).toEqual({ type: 'none' });
    expect(toAnthropicRequest({ ...base, tool_choice: { type: 'function', function: { name: 'get_weather' } } }, 'm', false).tool_choice).toEqual({ type: 'tool', name: 'get_weather' });
    expect(toAnthropicRequest({ ...base }, 'm', false).tool_choice).toBeUndefined();
    expect(toAnthropicRequest({ messages: base.messages, tool_choice: 'required' }, 'm', false).tool_choice).toBeUndefined();
  });

  it('translates image parts (data URLs to base64 sources, others to URL sources)', () => {
    const out = toAnthropicRequest({
      messages: [{ role: 'user', content: [
        { type: 'text', text: 'What is this?' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
        { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
      ] }],
    }, 'm', false);
    expect(out.messages[0].content).toEqual([
      { type: 'text', text: 'What is this?' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
    ]);
  });

  it('turns tool call arguments into an input object, wrapping what is not one', () => {
    expect(toolInput('{"a":1}')).toEqual({ a: 1 });
    expect(toolInput('')).toEqual({});
    expect(toolInput('[1,2]')).toEqual({ value: [1, 2] });
    expect(toolInput('not json')).toEqual({ arguments: 'not json' });
  });
});

describe('the Anthropic adapter translating answers', () => {
  it('maps text, tool_use blocks, the stop reason and usage with cache reads to an OpenAI completion', () => {
    const c = fromAnthropicResponse({
      id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-20250514',
      content: [
        { type: 'thinking', text: 'hmm' },
        { type: 'text', text: 'Let me check.' },
        { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
      ],
      stop_reason: 'tool_use',
      usage: { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 900, cache_creation_input_tokens: 50 },
    }, 1700000000);
    expect(c).toEqual({
      id: 'msg_1', object: 'chat.completion', created: 1700000000, model: 'claude-sonnet-4-20250514',
      choices: [{
        index: 0,
        message: { role: 'assistant', content: 'Let me check.', tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        finish_reason: 'tool_calls',
        logprobs: null,
      }],
      usage: { prompt_tokens: 1050, completion_tokens: 20, total_tokens: 1070, prompt_tokens_details: { cached_tokens: 900 } },
    });
  });

  it('gives null content for a tool-only answer and maps max_tokens to length', () => {
    const toolOnly = fromAnthropicResponse({ id: 'm', type: 'message', role: 'assistant', model: 'x', content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }], stop_reason: 'tool_use', usage: { input_tokens: 1, output_tokens: 1 } });
    expect(toolOnly.choices[0].message.content).toBeNull();
    const cut = fromAnthropicResponse({ id: 'm', type: 'message', role: 'assistant', model: 'x', content: [{ type: 'text', text: 'abc' }], stop_reason: 'max_tokens', usage: {} });
    expect(cut.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: 'abc' } });
    expect(usageOf({})).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, prompt_tokens_details: { cached_tokens: 0 } });
  });

  it('translates a streamed answer with text and a tool call into OpenAI chunks that add up to the same completion', () => {
    const t = new AnthropicStreamTranslator('claude-sonnet-4', 1700000000);
    const events: Array<[string, Record<string, unknown>]> = [
      ['message_start', { type: 'message_start', message: { id: 'msg_s', model: 'claude-sonnet-4-20250514', usage: { input_tokens: 30, cache_read_input_tokens: 10, output_tokens: 1 } } }],
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
      ['ping', { type: 'ping' }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Let me ' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'check.' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 0 }],
      ['content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_9', name: 'get_weather', input: {} } }],
      ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city":' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '"Paris"}' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 1 }],
      ['message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 25 } }],
      ['message_stop', { type: 'message_stop' }],
    ];
    const chunks = events.flatMap(([type, data]) => t.push(type, data));
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === 'msg_s')).toBe(true);
    const toolStart = chunks.find((c) => c.choices[0]?.delta.tool_calls?.[0]?.id);
    expect(toolStart?.choices[0].delta.tool_calls).toEqual([{ index: 0, id: 'toolu_9', type: 'function', function: { name: 'get_weather', arguments: '' } }]);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 40, completion_tokens: 25, total_tokens: 65, prompt_tokens_details: { cached_tokens: 10 } });
    const acc = new ChunkAccumulator();
    for (const c of chunks) acc.add(c);
    expect(acc.completion('fallback', 'm').choices[0]).toEqual({
      index: 0,
      message: { role: 'assistant', content: 'Let me check.', tool_calls: [{ id: 'toolu_9', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      finish_reason: 'tool_calls',
      logprobs: null,
    });
  });

  it('numbers several streamed tool calls in order and throws on an error event', () => {
    const t = new AnthropicStreamTranslator('m');
    t.push('message_start', { message: { id: 'x', usage: { input_tokens: 1 } } });
    const a = t.push('content_block_start', { index: 0, content_block: { type: 'tool_use', id: 'a', name: 'f' } });
    const b = t.push('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 'b', name: 'g' } });
    expect(a[0].choices[0].delta.tool_calls?.[0].index).toBe(0);
    expect(b[0].choices[0].delta.tool_calls?.[0].index).toBe(1);
    expect(t.push('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '{}' } })[0].choices[0].delta.tool_calls).toEqual([{ index: 1, function: { arguments: '{}' } }]);
    expect(() => t.push('error', { error: { type: 'overloaded_error', message: 'Overloaded' } })).toThrow(AnthropicStreamError);
  });
});

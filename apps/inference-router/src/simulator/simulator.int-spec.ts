import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startReplicaSimulator, type ReplicaSimulator } from './server.js';
import type { ChatMessage } from './prompt.js';

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

interface Completion {
  choices: { message: { role: string; content: string | null; tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[] }; finish_reason: string }[];
  usage: Usage;
}

interface Chunk {
  object: string;
  choices: { delta: { role?: string; content?: string; tool_calls?: { index: number; id?: string; function: { name?: string; arguments: string } }[] }; finish_reason: string | null }[];
  usage?: Usage;
}

const SYSTEM = 'You are a careful research agent. '.repeat(60);

async function post(sim: ReplicaSimulator, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${sim.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function complete(sim: ReplicaSimulator, messages: ChatMessage[], extra: Record<string, unknown> = {}): Promise<Completion> {
  const res = await post(sim, { model: 'sim-70b', messages, ...extra });
  expect(res.status).toBe(200);
  return (await res.json()) as Completion;
}

async function streamChunks(sim: ReplicaSimulator, messages: ChatMessage[], extra: Record<string, unknown> = {}): Promise<{ chunks: Chunk[]; done: boolean }> {
  const res = await post(sim, { model: 'sim-70b', messages, stream: true, ...extra });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/event-stream');
  const text = await res.text();
  const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
  return { chunks: events.filter((e) => e !== '[DONE]').map((e) => JSON.parse(e) as Chunk), done: events.at(-1) === '[DONE]' };
}

describe('the replica simulator over HTTP', () => {
  let sim: ReplicaSimulator;

  beforeAll(async () => {
    sim = await startReplicaSimulator({
      replicaId: 'sim-a',
      timeScale: 0.02,
      params: { prefillMsPerToken: 0.2, decodeMsPerStep: 25, maxConcurrency: 4, kvCacheTokens: 65_536 },
      script: [
        { match: { role: 'user', contains: 'weather' }, reply: { content: 'Let me check.', tool_calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] } },
        { match: { role: 'tool', pattern: '"temp":\\s*\\d+' }, reply: { content: 'It is 21 degrees in Paris.' } },
      ],
    });
  });

  afterAll(async () => {
    await sim.close();
  });

  it('lists its model and reports healthy, then 503 when marked down', async () => {
    const models = (await (await fetch(`${sim.url}/v1/models`)).json()) as { object: string; data: { id: string }[] };
    expect(models).toMatchObject({ object: 'list', data: [{ id: 'sim-70b' }] });
    expect((await fetch(`${sim.url}/health`)).status).toBe(200);
    sim.setHealthy(false);
    expect((await fetch(`${sim.url}/health`)).status).toBe(503);
    expect((await post(sim, { messages: [{ role: 'user', content: 'hi' }] })).status).toBe(503);
    sim.setHealthy(true);
    expect((await fetch(`${sim.url}/health`)).status).toBe(200);
  });

  it('streams OpenAI chat.completion.chunk events ending with usage and [DONE]', async () => {
    const { chunks, done } = await streamChunks(sim, [{ role: 'user', content: 'tell me something' }], { max_tokens: 12 });
    expect(done).toBe(true);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const content = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
    expect(content.split(' ')).toHaveLength(12);
    const finish = chunks.flatMap((c) => c.choices).find((ch) => ch.finish_reason !== null);
    expect(finish?.finish_reason).toBe('length');
    const usage = chunks.at(-1)!.usage!;
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(usage.completion_tokens).toBe(12);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + 12);
  });

  it('answers a session\'s later turns from the prefix cache of its earlier ones', async () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: SYSTEM },
      { role: 'user', content: 'Summarise the history of the printing press in detail.' },
    ];
    const before = sim.stats();
    const first = await complete(sim, messages, { max_tokens: 8 });
    expect(first.usage.prompt_tokens_details.cached_tokens).toBe(0);
    messages.push({ role: 'assistant', content: first.choices[0].message.content });
    messages.push({ role: 'user', content: 'Now compare it with movable type in Korea. '.repeat(10) });
    const second = await complete(sim, messages, { max_tokens: 8 });
    // Everything up to the last full block of the first prompt was cached.
    expect(second.usage.prompt_tokens_details.cached_tokens).toBe(Math.floor(first.usage.prompt_tokens / 16) * 16);
    expect(second.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(second.usage.prompt_tokens / 2);
    const after = sim.stats();
    expect(after.cachedTokens - before.cachedTokens).toBe(second.usage.prompt_tokens_details.cached_tokens);
    expect(after.prefillTokens - before.prefillTokens).toBe(first.usage.prompt_tokens + second.usage.prompt_tokens - second.usage.prompt_tokens_details.cached_tokens);
  });

  it('takes longer to first token for an uncached prompt than for a cached one', async () => {
    const long = 'A long document about distributed systems and consensus. '.repeat(400);
    const messages: ChatMessage[] = [{ role: 'user', content: long }];
    const timeToFirstChunk = async () => {
      const t = performance.now();
      const res = await post(sim, { messages, stream: true, max_tokens: 2 });
      const reader = res.body!.getReader();
      await reader.read();
      const elapsed = performance.now() - t;
      while (!(await reader.read()).done);
      return elapsed;
    };
    const cold = await timeToFirstChunk(); // ~5.7k tokens × 0.2 ms × 0.02 ≈ 23 ms
    const warm = await timeToFirstChunk();
    expect(cold).toBeGreaterThan(warm);
  });

  it('replies with scripted tool calls, non-streamed and streamed, then answers the tool result', async () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const reply = await complete(sim, messages);
    const choice = reply.choices[0];
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBe('Let me check.');
    expect(choice.message.tool_calls).toEqual([{ id: expect.any(String), type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }]);

    const { chunks } = await streamChunks(sim, messages);
    const calls = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? []));
    expect(calls[0]).toMatchObject({ index: 0, id: expect.any(String), function: { name: 'get_weather', arguments: '' } });
    expect(calls.map((c) => c.function.arguments).join('')).toBe('{"city":"Paris"}');
    expect(chunks.flatMap((c) => c.choices).find((ch) => ch.finish_reason)?.finish_reason).toBe('tool_calls');

    messages.push({ role: 'assistant', content: null, tool_calls: [{ id: choice.message.tool_calls![0].id, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] });
    messages.push({ role: 'tool', tool_call_id: choice.message.tool_calls![0].id, content: '{"temp": 21}' });
    const answer = await complete(sim, messages);
    expect(answer.choices[0]).toMatchObject({ finish_reason: 'stop', message: { role: 'assistant', content: 'It is 21 degrees in Paris.' } });
  });

  it('queues requests beyond its concurrency limit', async () => {
    const queued = await startReplicaSimulator({ timeScale: 0.02, params: { maxConcurrency: 1, decodeMsPerStep: 25 } });
    try {
      const go = (i: number) => complete(queued, [{ role: 'user', content: `request ${i}` }], { max_tokens: 10 });
      await Promise.all([go(1), go(2), go(3)]);
      expect(queued.stats()).toMatchObject({ completed: 3, peakWaiting: 2 });
    } finally {
      await queued.close();
    }
  });

  it('rejects malformed requests the way OpenAI does', async () => {
    const res = await post(sim, { messages: [] });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_messages');
    const tooLong = await post(sim, { messages: [{ role: 'user', content: 'x'.repeat(4 * 70_000) }] });
    expect(tooLong.status).toBe(400);
    expect(((await tooLong.json()) as { error: { code: string } }).error.code).toBe('context_length_exceeded');
    expect((await fetch(`${sim.url}/nope`)).status).toBe(404);
  });
});

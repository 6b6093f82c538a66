import { describe, expect, it } from '@jest/globals';
import { EngineRequestError, ReplicaEngine, type ReplicaParams } from './engine.js';

const params: Partial<ReplicaParams> = {
  prefillMsPerToken: 0.5,
  prefillOverheadMs: 0,
  decodeMsPerStep: 10,
  decodeMsPerSeq: 0,
  maxConcurrency: 2,
  kvCacheTokens: 16 * 1000,
  blockSize: 16,
};

function recorder() {
  const events: string[] = [];
  const first = new Map<string, number>();
  const done = new Map<string, number>();
  const cached = new Map<string, number>();
  return {
    events,
    first,
    done,
    cached,
    listener: {
      onPrefilled: (id: string, at: number, info: { cachedTokens: number }) => {
        first.set(id, at);
        cached.set(id, info.cachedTokens);
      },
      onToken: (id: string, i: number, at: number) => events.push(`${id}:${i}@${at}`),
      onDone: (id: string, at: number) => done.set(id, at),
    },
  };
}

function drain(engine: ReplicaEngine): void {
  for (let next = engine.nextEventAt(); next !== undefined; next = engine.nextEventAt()) engine.advanceTo(next);
}

const keys = (n: number, base = 0) => Array.from({ length: n }, (_, i) => base + i);

describe('ReplicaEngine', () => {
  it('takes prefill time per uncached token, then one decode step per further token', () => {
    const r = recorder();
    const engine = new ReplicaEngine(params, r.listener);
    engine.submit({ id: 'a', blockKeys: keys(10), promptTokens: 170, outputTokens: 3 }, 0);
    drain(engine);
    expect(r.first.get('a')).toBe(85);
    expect(r.events).toEqual(['a:0@85', 'a:1@95', 'a:2@105']);
    expect(r.done.get('a')).toBe(105);
  });

  it('skips prefill for the cached prefix on the next turn', () => {
    const r = recorder();
    const engine = new ReplicaEngine(params, r.listener);
    engine.submit({ id: 't1', blockKeys: keys(10), promptTokens: 170, outputTokens: 1 }, 0);
    drain(engine);
    engine.submit({ id: 't2', blockKeys: keys(20), promptTokens: 330, outputTokens: 1 }, 1000);
    drain(engine);
    expect(r.cached.get('t2')).toBe(160);
    expect(r.first.get('t2')).toBe(1000 + (330 - 160) * 0.5);
    expect(engine.stats()).toMatchObject({ promptTokens: 500, cachedTokens: 160, prefillTokens: 340, completed: 2 });
  });

  it('queues requests beyond its concurrency and runs them first-come first-served', () => {
    const r = recorder();
    const engine = new ReplicaEngine({ ...params, maxConcurrency: 1 }, r.listener);
    engine.submit({ id: 'a', blockKeys: [], promptTokens: 10, outputTokens: 5 }, 0);
    engine.submit({ id: 'b', blockKeys: [], promptTokens: 10, outputTokens: 5 }, 0);
    expect(engine.waitingCount).toBe(1);
    drain(engine);
    expect(r.first.get('b')!).toBeGreaterThanOrEqual(r.done.get('a')!);
    expect(engine.stats().peakWaiting).toBe(1);
  });

  it('stalls running decodes while it prefills a newcomer', () => {
    const r = recorder();
    const engine = new ReplicaEngine(params, r.listener);
    engine.submit({ id: 'a', blockKeys: [], promptTokens: 10, outputTokens: 4 }, 0); // prefill 5 ms
    engine.advanceTo(5);
    engine.submit({ id: 'b', blockKeys: [], promptTokens: 200, outputTokens: 1 }, 6); // 100 ms prefill after a's decode step
    drain(engine);
    expect(r.events.filter((e) => e.startsWith('a:'))).toEqual(['a:0@5', 'a:1@15', 'a:2@125', 'a:3@135']);
  });

  it('is deterministic', () => {
    const run = () => {
      const r = recorder();
      const engine = new ReplicaEngine(params, r.listener);
      for (let i = 0; i < 50; i++) engine.submit({ id: `s${i}`, blockKeys: keys(i % 7, (i % 5) * 100), promptTokens: 16 * (i % 7) + 5, outputTokens: 1 + (i % 4) }, i * 3);
      drain(engine);
      return r.events.join(',');
    };
    expect(run()).toBe(run());
  });

  it('rejects a request larger than the KV cache, and duplicates', () => {
    const engine = new ReplicaEngine(params);
    expect(() => engine.submit({ id: 'x', blockKeys: [], promptTokens: 16_001, outputTokens: 1 }, 0)).toThrow(EngineRequestError);
    engine.submit({ id: 'y', blockKeys: [], promptTokens: 10, outputTokens: 1 }, 0);
    expect(() => engine.submit({ id: 'y', blockKeys: [], promptTokens: 10, outputTokens: 1 }, 0)).toThrow(expect.objectContaining({ code: 'DUPLICATE_ID' }));
  });

  it('frees a cancelled request\'s KV blocks', () => {
    const engine = new ReplicaEngine(params);
    engine.submit({ id: 'a', blockKeys: keys(10), promptTokens: 160, outputTokens: 100 }, 0);
    engine.advanceTo(100);
    expect(engine.runningCount).toBe(1);
    expect(engine.cancel('a')).toBe(true);
    expect(engine.runningCount).toBe(0);
    expect(engine.cache.stats()).toMatchObject({ pinnedBlocks: 0, reservedBlocks: 0 });
  });
});

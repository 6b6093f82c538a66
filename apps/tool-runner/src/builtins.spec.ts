import { describe, expect, it } from '@jest/globals';
import type { JsonValue } from '#libs/contracts';
import { BUILTINS, BuiltinError, type BuiltinContext, type MemoryStore } from './builtins.js';
import { mapCallResult } from './mcp-client.js';

function memoryCtx(sessionId?: string): BuiltinContext & { data: Map<string, JsonValue> } {
  const data = new Map<string, JsonValue>();
  const memory: MemoryStore = {
    get: async (t, s, k) => (data.has(`${t}/${s}/${k}`) ? { value: data.get(`${t}/${s}/${k}`)! } : null),
    put: async (t, s, k, v) => { data.set(`${t}/${s}/${k}`, v); },
  };
  return { tenantId: 'acme', sessionId, memory, data };
}

describe('the memory builtins', () => {
  it('put a value under the tenant and session, and get it back', async () => {
    const ctx = memoryCtx('s1');
    expect(await BUILTINS.memory_put.run({ key: 'k', value: [1, 2] }, ctx)).toEqual({ key: 'k', stored: true });
    expect(ctx.data.get('acme/s1/k')).toEqual([1, 2]);
    expect(await BUILTINS.memory_get.run({ key: 'k' }, ctx)).toEqual({ key: 'k', found: true, value: [1, 2] });
    expect(await BUILTINS.memory_get.run({ key: 'other' }, ctx)).toEqual({ key: 'other', found: false, value: null });
  });

  it('fail with no_session when the run has no session', async () => {
    await expect(Promise.resolve().then(() => BUILTINS.memory_get.run({ key: 'k' }, memoryCtx()))).rejects.toMatchObject({ code: 'no_session' });
    await expect(Promise.resolve().then(() => BUILTINS.memory_put.run({ key: 'k', value: 1 }, memoryCtx('')))).rejects.toMatchObject({ code: 'no_session' });
  });

  it('reject bad keys, a missing value and values over 64 KiB', async () => {
    const ctx = memoryCtx('s1');
    await expect(Promise.resolve().then(() => BUILTINS.memory_get.run({ key: '' }, ctx))).rejects.toBeInstanceOf(BuiltinError);
    await expect(Promise.resolve().then(() => BUILTINS.memory_put.run({ key: 'k' }, ctx))).rejects.toMatchObject({ code: 'builtin_error' });
    await expect(Promise.resolve().then(() => BUILTINS.memory_put.run({ key: 'k', value: 'x'.repeat(70_000) }, ctx))).rejects.toMatchObject({ code: 'value_too_large' });
  });

  it('are get-pure and put-impure (put keeps an idempotency record)', () => {
    expect(BUILTINS.memory_get.pure).toBe(true);
    expect(BUILTINS.memory_put.pure).toBe(false);
  });
});

describe('the MCP result mapping', () => {
  it('prefers structuredContent, else gives content and joined text', () => {
    expect(mapCallResult({ content: [{ type: 'text', text: 'a' }], structuredContent: { x: 1 } })).toEqual({ ok: true, result: { x: 1 } });
    expect(mapCallResult({ content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] })).toEqual({
      ok: true, result: { content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }], text: 'a\nb' },
    });
  });

  it('turns isError into a non-retryable tool failure', () => {
    expect(mapCallResult({ isError: true, content: [{ type: 'text', text: 'boom' }] })).toMatchObject({
      ok: false, error: { code: 'mcp_tool_error', message: 'the MCP tool reported an error: boom', retryable: false },
    });
  });
});

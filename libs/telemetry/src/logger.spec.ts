import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createLogger } from './logger.js';
import { childTraceparent, runWithTrace, traceIdOf } from './trace.js';

/** A logger writing into an array of parsed JSON lines. */
function capture(level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger('test-svc', level, sink), lines };
}

const SECRET = 'sk-live-0123456789abcdef';

describe('the structured logger', () => {
  it('stamps every line inside a traced scope with the trace id, tenant and session', async () => {
    const { logger, lines } = capture();
    const tp = childTraceparent();
    await runWithTrace({ traceparent: tp, tenantId: 'acme', sessionId: 'chat-1' }, async () => {
      logger.info('first');
      await new Promise((r) => setTimeout(r, 1));
      logger.warn({ step: 2 }, 'second');
    });
    logger.info('outside');
    expect(lines).toHaveLength(3);
    for (const l of lines.slice(0, 2)) expect(l).toMatchObject({ service: 'test-svc', traceId: traceIdOf(tp), tenant: 'acme', sessionId: 'chat-1' });
    expect(lines[2]).not.toHaveProperty('traceId');
    expect(lines[2]).not.toHaveProperty('tenant');
  });

  it('redacts secret-looking fields at the top level and nested', () => {
    const { logger, lines } = capture();
    logger.info({
      password: SECRET,
      token: SECRET,
      tool: { name: 'http', apiKey: SECRET, auth: { clientSecret: SECRET, accessToken: SECRET } },
      headers: { authorization: `Bearer ${SECRET}`, 'x-api-key': SECRET, accept: 'application/json' },
      credential: { material: SECRET },
      value: SECRET,
    }, 'calling a tool');
    const text = JSON.stringify(lines);
    expect(text).not.toContain(SECRET);
    expect(lines[0]).toMatchObject({
      password: '[redacted]', token: '[redacted]', value: '[redacted]',
      tool: { name: 'http', apiKey: '[redacted]', auth: { clientSecret: '[redacted]', accessToken: '[redacted]' } },
      headers: { authorization: '[redacted]', 'x-api-key': '[redacted]', accept: 'application/json' },
      credential: { material: '[redacted]' },
    });
  });

  it('leaves ordinary fields alone', () => {
    const { logger, lines } = capture();
    logger.info({ runId: 'r-1', tool: 'echo', steps: 3 }, 'run finished');
    expect(lines[0]).toMatchObject({ runId: 'r-1', tool: 'echo', steps: 3, msg: 'run finished' });
  });
});

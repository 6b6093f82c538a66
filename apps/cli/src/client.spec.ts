import { describe, expect, it } from '@jest/globals';
import { ApiClient, problemOf, SseParser } from './client.js';
import { ApiProblem, UnavailableError } from './errors.js';
import { fakeFetch, graphJournal, json, problemResponse, sse } from './test/fakes.js';

const EVENTS = '/v1/tenants/acme/runs/run_01J0000000000000000000000A/events';
const RUN = '/v1/tenants/acme/runs/run_01J0000000000000000000000A';

describe('the SSE parser', () => {
  it('parses frames split across chunks, with CRLF, comments and multi-line data', () => {
    const p = new SseParser();
    const text = ': hello\r\n\r\nid: 1\r\nevent: a\r\ndata: {"x":\r\ndata: 1}\r\n\r\nid: 2\nevent: b\ndata: 2\n\n: keep-alive\n\n';
    const frames = [...text].flatMap((ch) => p.push(ch));
    expect(frames).toEqual([{ id: '1', event: 'a', data: '{"x":\n1}' }, { id: '2', event: 'b', data: '2' }]);
  });
});

describe('problem documents', () => {
  it('keeps an RFC 9457 body and makes one up for other error bodies', () => {
    expect(problemOf(409, 'Conflict', { status: 409, detail: 'taken', code: 'conflict', reason: 'x' })).toMatchObject({ status: 409, detail: 'taken', code: 'conflict' });
    expect(problemOf(502, 'Bad Gateway', '<html>nginx</html>')).toEqual({ status: 502, detail: '<html>nginx</html>', code: 'bad_gateway' });
    expect(problemOf(418, '', null)).toEqual({ status: 418, detail: 'HTTP 418', code: 'client_error' });
  });
});

describe('the API client', () => {
  it('sends the bearer key and JSON, and returns the parsed body', async () => {
    const f = fakeFetch({ 'PUT /v1/tenants/acme/tools/echo': json(201, { name: 'echo' }) });
    const api = new ApiClient('http://gw:1/', 'amk_secret', f.fetch);
    const res = await api.request('PUT', '/v1/tenants/acme/tools/echo', { version: '1' });
    expect(res).toMatchObject({ status: 201, body: { name: 'echo' } });
    expect(f.requests[0]).toMatchObject({ url: 'http://gw:1/v1/tenants/acme/tools/echo', body: { version: '1' }, headers: { authorization: 'Bearer amk_secret', 'content-type': 'application/json' } });
  });

  it('throws problems with exit code 2 for 4xx and 3 for 5xx, and 3 when the server cannot be reached', async () => {
    const f = fakeFetch({
      'GET /a': problemResponse(404, 'run x not found', 'not_found'),
      'GET /b': problemResponse(503, 'NATS is down', 'unavailable', {}, { 'retry-after': '2' }),
    });
    const api = new ApiClient('http://gw:1', 'k', f.fetch);
    await expect(api.request('GET', '/a')).rejects.toMatchObject({ name: 'ApiProblem', message: 'run x not found', code: 'not_found', exitCode: 2 });
    await expect(api.request('GET', '/b')).rejects.toMatchObject({ code: 'unavailable', exitCode: 3, extra: { hints: ['retry after 2 s'] } });
    const down = new ApiClient('http://gw:1', 'k', (async () => { throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }); }) as typeof fetch);
    const e = await down.request('GET', '/a').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UnavailableError);
    expect(e).toMatchObject({ message: 'cannot reach http://gw:1: ECONNREFUSED', exitCode: 3 });
  });

  it('follows a run to its terminal event, resuming with Last-Event-ID after the stream breaks, without duplicates', async () => {
    const journal = graphJournal('completed');
    const f = fakeFetch({ [`GET ${EVENTS}`]: [sse(journal.slice(0, 4)), sse(journal.slice(2, 6), { errorFrame: true }), sse(journal.slice(5))] });
    const seen: number[] = [];
    const r = await new ApiClient('http://gw:1', 'k', f.fetch).followRun('acme', 'run_01J0000000000000000000000A', { onEvent: (e) => { seen.push(e.seq); }, retryDelayMs: 1 });
    expect(r).toEqual({ lastSeq: 9, outcome: 'completed' });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(f.requests.map((q) => q.headers['last-event-id'])).toEqual([undefined, '4', '6']);
  });

  it('asks for the run when a resumed stream closes with nothing new (it ended before the resume point)', async () => {
    const f = fakeFetch({ [`GET ${EVENTS}`]: sse([]), [`GET ${RUN}`]: json(200, { id: 'r', status: 'failed' }) });
    const r = await new ApiClient('http://gw:1', 'k', f.fetch).followRun('acme', 'run_01J0000000000000000000000A', { after: 9, onEvent: () => undefined });
    expect(r).toEqual({ lastSeq: 9, outcome: 'failed' });
  });

  it('does not retry a 4xx problem and gives up on a server that keeps failing', async () => {
    const gone = fakeFetch({ [`GET ${EVENTS}`]: problemResponse(404, 'run r not found', 'not_found') });
    await expect(new ApiClient('http://gw:1', 'k', gone.fetch).followRun('acme', 'run_01J0000000000000000000000A', { onEvent: () => undefined }))
      .rejects.toBeInstanceOf(ApiProblem);
    expect(gone.requests).toHaveLength(1);
    const down = fakeFetch({ [`GET ${EVENTS}`]: problemResponse(503, 'journal unavailable', 'unavailable') });
    await expect(new ApiClient('http://gw:1', 'k', down.fetch).followRun('acme', 'run_01J0000000000000000000000A', { onEvent: () => undefined, maxRetries: 2, retryDelayMs: 1 }))
      .rejects.toMatchObject({ code: 'unavailable', exitCode: 3 });
    expect(down.requests).toHaveLength(3);
  });
});

import type { ReplicaKind } from '#libs/config';
import { ANTHROPIC_VERSION, AnthropicStreamError, AnthropicStreamTranslator, fromAnthropicResponse, toAnthropicRequest, type AnthropicMessage } from './anthropic.js';
import { failure, readJson, send, sseEvents, UpstreamError } from './http.js';
import { ChunkAccumulator, type ChatChunk, type ChatCompletion, type ChatCompletionRequest } from './types.js';

/** Where a call goes: the replica and its key (never logged). */
export interface ReplicaTarget {
  readonly id: string;
  readonly url: string;
  readonly kind: ReplicaKind;
  readonly apiKey?: string;
}

export interface UpstreamCall {
  readonly target: ReplicaTarget;
  /** The model to ask the replica for. */
  readonly model: string;
  /** OpenAI-shaped request; its `model`, `stream` and `stream_options` are set by the call. */
  readonly request: ChatCompletionRequest;
  readonly stream: boolean;
  /** Streamed pieces, OpenAI chunk format (for Anthropic: translated). Includes a usage-only chunk when the replica sends one. */
  readonly onChunk?: (chunk: ChatChunk) => void;
  /** Time allowed to the response headers. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface UpstreamResult {
  readonly completion: ChatCompletion;
  /** performance.now() when the replica's first output (or the whole answer) arrived. */
  readonly firstTokenAt: number;
}

/** `http://host:8000` and `http://host:8000/v1` both name the same API root. */
export function apiBase(url: string): string {
  return url.replace(/\/+$/, '').replace(/\/v1$/, '');
}

function isCompletion(v: unknown): v is ChatCompletion {
  const c = v as ChatCompletion | null;
  return typeof c === 'object' && c !== null && Array.isArray(c.choices) && c.choices.length > 0 && typeof c.choices[0]?.message === 'object';
}

async function openAiChat(call: UpstreamCall): Promise<UpstreamResult> {
  const { stream } = call;
  const body: ChatCompletionRequest = { ...call.request, model: call.model, stream };
  if (stream) body.stream_options = { ...(call.request.stream_options ?? {}), include_usage: true };
  else delete body.stream_options;
  const headers: Record<string, string> = { accept: stream ? 'text/event-stream' : 'application/json' };
  if (call.target.apiKey) headers.authorization = `Bearer ${call.target.apiKey}`;
  const res = await send(`${apiBase(call.target.url)}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify(body), timeoutMs: call.timeoutMs, signal: call.signal });
  if (res.status !== 200) throw await failure(res);
  if (!stream) {
    const json = await readJson(res.body);
    if (!isCompletion(json)) throw new UpstreamError('protocol', 'the replica answered without a completion');
    return { completion: json, firstTokenAt: performance.now() };
  }
  const acc = new ChunkAccumulator();
  let firstTokenAt = 0;
  let done = false;
  // read to the end of the body even after [DONE]: leaving early would destroy the keep-alive socket
  for await (const ev of sseEvents(res.body)) {
    if (done) continue;
    if (ev.data === '[DONE]') {
      done = true;
      continue;
    }
    let chunk: ChatChunk & { error?: { message?: string } };
    try {
      chunk = JSON.parse(ev.data) as ChatChunk & { error?: { message?: string } };
    } catch (cause) {
      throw new UpstreamError('protocol', 'the replica streamed something that is not JSON', undefined, undefined, { cause });
    }
    if (chunk.error) throw new UpstreamError('status', `the replica failed mid-stream: ${chunk.error.message ?? 'error'}`, 500, chunk);
    if (!Array.isArray(chunk.choices)) continue;
    if (firstTokenAt === 0 && chunk.choices.length > 0) firstTokenAt = performance.now();
    acc.add(chunk);
    call.onChunk?.(chunk);
  }
  return { completion: acc.completion(`chatcmpl-${call.target.id}`, call.model), firstTokenAt: firstTokenAt || performance.now() };
}

async function anthropicChat(call: UpstreamCall): Promise<UpstreamResult> {
  const { stream } = call;
  const body = toAnthropicRequest(call.request, call.model, stream);
  const headers: Record<string, string> = { accept: stream ? 'text/event-stream' : 'application/json', 'anthropic-version': ANTHROPIC_VERSION };
  if (call.target.apiKey) headers['x-api-key'] = call.target.apiKey;
  const res = await send(`${apiBase(call.target.url)}/v1/messages`, { method: 'POST', headers, body: JSON.stringify(body), timeoutMs: call.timeoutMs, signal: call.signal });
  if (res.status !== 200) {
    const e = await failure(res);
    // Anthropic's 529 "overloaded" is a replica fault like a 503
    throw res.status === 529 ? new UpstreamError('status', e.message, 503, e.body) : e;
  }
  if (!stream) {
    const json = (await readJson(res.body)) as AnthropicMessage;
    if (typeof json !== 'object' || json === null || !Array.isArray(json.content)) throw new UpstreamError('protocol', 'the replica answered without a message');
    return { completion: fromAnthropicResponse(json), firstTokenAt: performance.now() };
  }
  const translator = new AnthropicStreamTranslator(call.model);
  const acc = new ChunkAccumulator();
  let firstTokenAt = 0;
  for await (const ev of sseEvents(res.body)) {
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(ev.data) as Record<string, unknown>;
    } catch (cause) {
      throw new UpstreamError('protocol', 'the replica streamed something that is not JSON', undefined, undefined, { cause });
    }
    let chunks: ChatChunk[];
    try {
      chunks = translator.push(ev.event ?? (data.type as string) ?? '', data);
    } catch (e) {
      if (e instanceof AnthropicStreamError) throw new UpstreamError('status', `the replica failed mid-stream: ${e.message}`, e.type === 'overloaded_error' ? 503 : 500, { type: e.type });
      throw e;
    }
    for (const chunk of chunks) {
      if (firstTokenAt === 0 && chunk.choices.length > 0 && (chunk.choices[0].delta.content || chunk.choices[0].delta.tool_calls)) firstTokenAt = performance.now();
      acc.add(chunk);
      call.onChunk?.(chunk);
    }
  }
  return { completion: acc.completion(`msg-${call.target.id}`, call.model), firstTokenAt: firstTokenAt || performance.now() };
}

/** One chat call to a replica, in its own API; answers in OpenAI's shape. */
export function callReplica(call: UpstreamCall): Promise<UpstreamResult> {
  return call.target.kind === 'anthropic' ? anthropicChat(call) : openAiChat(call);
}

/** One health probe: GET the replica's health path; true on 2xx. */
export async function probe(target: ReplicaTarget, path: string, timeoutMs: number): Promise<boolean> {
  const headers: Record<string, string> = {};
  if (target.apiKey) {
    if (target.kind === 'anthropic') {
      headers['x-api-key'] = target.apiKey;
      headers['anthropic-version'] = ANTHROPIC_VERSION;
    } else {
      headers.authorization = `Bearer ${target.apiKey}`;
    }
  }
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    const res = await send(`${apiBase(target.url)}${path}`, { method: 'GET', headers, timeoutMs, signal: ac.signal });
    res.body.resume();
    await new Promise<void>((resolve) => {
      res.body.once('end', resolve);
      res.body.once('error', () => resolve());
      res.body.once('close', resolve);
    });
    return res.status >= 200 && res.status < 300;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

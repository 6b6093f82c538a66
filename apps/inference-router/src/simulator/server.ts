import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { EngineRequestError, ReplicaEngine, type EngineStats, type PrefillInfo, type ReplicaParams } from './engine.js';
import { countTokens, promptBlockKeys, renderPrompt, type ChatMessage } from './prompt.js';
import { planReply, type Piece, type PlannedReply } from './replies.js';
import { matchScript, type ScriptRule } from './script.js';

export interface ReplicaSimulatorOptions {
  /** Port to listen on; 0 (default) picks a free one. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  readonly replicaId?: string;
  /** Model id served (GET /v1/models); requests may name any model. Default `sim-70b`. */
  readonly model?: string;
  readonly params?: Partial<ReplicaParams>;
  /** Real milliseconds per simulated millisecond: 1 is real time, 0.01 runs 100× faster. */
  readonly timeScale?: number;
  /** Characters per token of the approximate tokenizer. Default 4. */
  readonly charsPerToken?: number;
  /** Output tokens of an unscripted reply when the request sets no max_tokens. Default 32. */
  readonly defaultOutputTokens?: number;
  /** Queued requests beyond which new ones get 429. Default unlimited. */
  readonly maxQueue?: number;
  readonly script?: readonly ScriptRule[];
}

export interface ReplicaSimulatorStats extends EngineStats {
  readonly replicaId: string;
  readonly model: string;
  readonly healthy: boolean;
  readonly httpRequests: number;
  readonly rejected: number;
}

export interface ReplicaSimulator {
  readonly url: string;
  readonly port: number;
  readonly replicaId: string;
  stats(): ReplicaSimulatorStats;
  /** Makes /health answer 503 and completions fail with 503 (a replica failure), or restores it. */
  setHealthy(up: boolean): void;
  close(): Promise<void>;
}

interface Pending {
  onPrefilled(info: PrefillInfo): void;
  onToken(index: number): void;
  onDone(): void;
}

interface CompletionBody {
  readonly model?: unknown;
  readonly messages?: unknown;
  readonly tools?: unknown;
  readonly stream?: unknown;
  readonly max_tokens?: unknown;
  readonly max_completion_tokens?: unknown;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly type = 'invalid_request_error',
  ) {
    super(message);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

function sendError(res: ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, err.status, { error: { message: err.message, type: err.type, param: null, code: err.code } });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'body_too_large', 'request body too large');
    parts.push(b);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (cause) {
    throw Object.assign(new HttpError(400, 'invalid_json', 'request body is not valid JSON'), { cause });
  }
}

function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw new HttpError(400, 'invalid_messages', 'messages must be a non-empty array');
  for (const [i, m] of v.entries()) {
    if (typeof m !== 'object' || m === null || typeof (m as { role?: unknown }).role !== 'string') {
      throw new HttpError(400, 'invalid_messages', `messages[${i}] needs a role`);
    }
  }
  return v as ChatMessage[];
}

function optionalInt(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Number.isInteger(v) || (v as number) < 1) throw new HttpError(400, 'invalid_value', `${name} must be a positive integer`);
  return v as number;
}

function delta(piece: Piece, first: boolean): Record<string, unknown> {
  const d: Record<string, unknown> = first ? { role: 'assistant' } : {};
  if (piece.kind === 'content') d.content = piece.text;
  else if (piece.kind === 'tool_start') d.tool_calls = [{ index: piece.index, id: piece.id, type: 'function', function: { name: piece.name, arguments: '' } }];
  else d.tool_calls = [{ index: piece.index, function: { arguments: piece.text } }];
  return d;
}

/**
 * Starts an OpenAI-compatible HTTP server modelling one GPU replica: `POST /v1/chat/completions`
 * (streamed or not), `GET /v1/models`, `GET /health`, `GET /stats`. Timing and caching come from
 * ReplicaEngine; a request's prompt is the rendered message history, cut into KV blocks, so a
 * session's later turns hit the cache for its earlier ones (`usage.prompt_tokens_details.cached_tokens`).
 */
export async function startReplicaSimulator(opts: ReplicaSimulatorOptions = {}): Promise<ReplicaSimulator> {
  const replicaId = opts.replicaId ?? 'replica-0';
  const model = opts.model ?? 'sim-70b';
  const timeScale = opts.timeScale ?? 1;
  const charsPerToken = opts.charsPerToken ?? 4;
  const defaultOutputTokens = opts.defaultOutputTokens ?? 32;
  const maxQueue = opts.maxQueue ?? Number.POSITIVE_INFINITY;
  const script = opts.script ?? [];
  if (!(timeScale > 0)) throw new RangeError('timeScale must be positive');
  if (!(charsPerToken >= 1)) throw new RangeError('charsPerToken must be ≥ 1');

  const pending = new Map<string, Pending>();
  const engine = new ReplicaEngine(opts.params, {
    onPrefilled: (id, _at, info) => pending.get(id)?.onPrefilled(info),
    onToken: (id, index) => pending.get(id)?.onToken(index),
    onDone: (id) => pending.get(id)?.onDone(),
  });
  const t0 = performance.now();
  const modelNow = (): number => (performance.now() - t0) / timeScale;
  let timer: NodeJS.Timeout | undefined;
  let healthy = true;
  let seq = 0;
  let httpRequests = 0;
  let rejected = 0;

  const pump = (): void => {
    timer = undefined;
    engine.advanceTo(modelNow());
    schedule();
  };
  const schedule = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const next = engine.nextEventAt();
    if (next === undefined) return;
    timer = setTimeout(pump, Math.max(0, (next - modelNow()) * timeScale));
  };

  const complete = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!healthy) throw new HttpError(503, 'replica_unavailable', `replica ${replicaId} is down`, 'server_error');
    const body = (await readJson(req)) as CompletionBody;
    if (typeof body !== 'object' || body === null) throw new HttpError(400, 'invalid_body', 'body must be a JSON object');
    const messages = parseMessages(body.messages);
    const stream = body.stream === true;
    const maxTokens = optionalInt(body.max_completion_tokens, 'max_completion_tokens') ?? optionalInt(body.max_tokens, 'max_tokens');
    const text = renderPrompt(messages, body.tools);
    const promptTokens = countTokens(text, charsPerToken);
    const blockSize = engine.cache.blockSize;
    const id = `chatcmpl-${replicaId}-${++seq}`;
    const plan: PlannedReply = planReply({
      scripted: matchScript(script, messages),
      maxTokens,
      defaultTokens: defaultOutputTokens,
      charsPerToken,
      seedText: text,
      callIdPrefix: `call_${seq}`,
    });
    if (engine.waitingCount >= maxQueue) {
      rejected++;
      throw new HttpError(429, 'replica_busy', `replica ${replicaId} queue is full`, 'rate_limit_error');
    }
    const created = Math.floor(Date.now() / 1000);
    const modelName = typeof body.model === 'string' ? body.model : model;
    let cachedTokens = 0;
    const usage = () => ({
      prompt_tokens: promptTokens,
      completion_tokens: plan.pieces.length,
      total_tokens: promptTokens + plan.pieces.length,
      prompt_tokens_details: { cached_tokens: cachedTokens },
    });
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: modelName, choices, ...extra })}\n\n`;

    await new Promise<void>((resolve) => {
      let finished = false;
      pending.set(id, {
        onPrefilled: (info) => {
          cachedTokens = info.cachedTokens;
          if (stream) {
            res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-agentmesh-replica': replicaId });
          }
        },
        onToken: (index) => {
          if (stream) res.write(chunk([{ index: 0, delta: delta(plan.pieces[index], index === 0), logprobs: null, finish_reason: null }]));
        },
        onDone: () => {
          finished = true;
          pending.delete(id);
          if (stream) {
            res.write(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: plan.finishReason }]));
            res.write(chunk([], { usage: usage() }));
            res.end('data: [DONE]\n\n');
          } else {
            const message: Record<string, unknown> = { role: 'assistant', content: plan.content };
            if (plan.toolCalls.length > 0) message.tool_calls = plan.toolCalls;
            sendJson(
              res,
              200,
              { id, object: 'chat.completion', created, model: modelName, choices: [{ index: 0, message, logprobs: null, finish_reason: plan.finishReason }], usage: usage() },
              { 'x-agentmesh-replica': replicaId },
            );
          }
          resolve();
        },
      });
      res.on('close', () => {
        if (finished) return;
        pending.delete(id);
        engine.cancel(id);
        schedule();
        resolve();
      });
      const blockKeys = promptBlockKeys(text, blockSize, charsPerToken);
      try {
        engine.submit({ id, blockKeys, promptTokens, outputTokens: plan.pieces.length }, modelNow());
      } catch (err) {
        pending.delete(id);
        finished = true;
        const code = err instanceof EngineRequestError ? err.code.toLowerCase() : 'invalid_request';
        sendError(res, new HttpError(400, code === 'context_too_long' ? 'context_length_exceeded' : code, (err as Error).message));
        resolve();
        return;
      }
      schedule();
    });
  };

  const server = createServer((req, res) => {
    httpRequests++;
    const path = (req.url ?? '/').split('?')[0];
    const route = `${req.method} ${path}`;
    const run = async (): Promise<void> => {
      switch (route) {
        case 'POST /v1/chat/completions':
          return complete(req, res);
        case 'GET /v1/models':
          return sendJson(res, 200, { object: 'list', data: [{ id: model, object: 'model', created: 0, owned_by: 'agentmesh-simulator' }] });
        case 'GET /health':
          return healthy
            ? sendJson(res, 200, { status: 'ok', replicaId, model, running: engine.runningCount, waiting: engine.waitingCount })
            : sendJson(res, 503, { status: 'down', replicaId });
        case 'GET /stats':
          return sendJson(res, 200, stats());
        default:
          throw new HttpError(404, 'not_found', `no route ${route}`);
      }
    };
    run().catch((err: unknown) => {
      sendError(res, err instanceof HttpError ? err : new HttpError(500, 'internal_error', 'internal error', 'server_error'));
    });
  });

  const stats = (): ReplicaSimulatorStats => ({ ...engine.stats(), replicaId, model, healthy, httpRequests, rejected });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    replicaId,
    stats,
    setHealthy: (up: boolean) => {
      healthy = up;
    },
    close: async () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      for (const id of [...pending.keys()]) engine.cancel(id);
      pending.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

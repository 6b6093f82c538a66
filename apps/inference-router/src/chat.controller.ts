import type { IncomingMessage, ServerResponse } from 'node:http';
import { Controller, Get, Inject, Injectable, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AgentmeshError, invalid, isTenantId, SESSION_ID, type ModelHint } from '#libs/contracts';
import { LOGGER } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { httpError, readJsonBody, sendError } from './http-errors.js';
import { InferenceService, type ChatOutput } from './inference.service.js';
import type { ChatChunk } from './upstream/types.js';
import { checkChatRequest } from './validation.js';

/** Request headers of the internal endpoint. */
export const INFERENCE_HEADERS = {
  tenant: 'x-agentmesh-tenant',
  session: 'x-agentmesh-session',
  run: 'x-agentmesh-run',
  agent: 'x-agentmesh-agent',
  callKey: 'x-agentmesh-call-key',
  hint: 'x-agentmesh-model-hint',
} as const;

const CALL_KEY = /^[A-Za-z0-9_:.-]{1,200}$/;
const AGENT = /^[A-Za-z0-9_.-]{1,64}$/;

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function serverTiming(t: ChatOutput['timing']): string {
  return `router;dur=${t.routerMs.toFixed(3)}, queue;dur=${t.queuedMs.toFixed(3)}, upstream;dur=${t.upstreamMs.toFixed(3)}`;
}

/**
 * The internal OpenAI-compatible endpoint: `POST /v1/chat/completions` (streamed as SSE or not)
 * and `GET /v1/models`, for platform components and operators. Not the public door: tenants'
 * LLM calls go through runs (gateway → orchestrator → `inference.chat`), where API keys, policy
 * and budgets apply. Here a service token (AGENTMESH_INFERENCE_TOKEN / `<data>/inference.token`)
 * authenticates, `X-Agentmesh-Tenant` names whom the tokens are metered to, and
 * `X-Agentmesh-Session` is the affinity key (turns with the same session go to the same replica).
 * `model: "auto"` (or none) lets `X-Agentmesh-Model-Hint: easy|hard` and the routing rules choose.
 */
@Controller()
export class ChatController {
  constructor(private readonly inference: InferenceService) {}

  @Get('v1/models')
  models(@Req() req: Request, @Res() res: Response): void {
    if (!this.inference.token.verify(req.headers.authorization)) return sendError(res, 401, 'invalid_token', 'a valid service token is required (Authorization: Bearer ...)');
    const data = ['auto', ...this.inference.models()].map((id) => ({ id, object: 'model', created: 0, owned_by: 'agentmesh' }));
    res.json({ object: 'list', data });
  }
}

/**
 * `POST /v1/chat/completions`, served from the HTTP server's request event ahead of express
 * (service.ts) rather than as a Nest route: the hot path skips express's and Nest's routing and
 * the generic body parser, which together cost about 0.2 ms a call (scripts/bench-router.mjs).
 */
@Injectable()
export class ChatHandler {
  constructor(private readonly inference: InferenceService, @Inject(LOGGER) private readonly logger: Logger) {}

  async handle(req: IncomingMessage, res: ServerResponse, maxBodyBytes: number): Promise<void> {
    if (!this.inference.token.verify(req.headers.authorization)) {
      req.resume();
      return sendError(res, 401, 'invalid_token', 'a valid service token is required (Authorization: Bearer ...)');
    }
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    let streaming = false;
    try {
      const tenantId = header(req, INFERENCE_HEADERS.tenant);
      if (!isTenantId(tenantId)) throw invalid(`the ${INFERENCE_HEADERS.tenant} header must name a tenant`, [{ field: INFERENCE_HEADERS.tenant, message: 'is missing or not a tenant id' }]);
      const session = header(req, INFERENCE_HEADERS.session);
      if (session !== undefined && !SESSION_ID.test(session)) throw invalid(`the ${INFERENCE_HEADERS.session} header must match ${SESSION_ID.source}`);
      const hint = header(req, INFERENCE_HEADERS.hint);
      if (hint !== undefined && hint !== 'easy' && hint !== 'hard') throw invalid(`the ${INFERENCE_HEADERS.hint} header must be easy or hard`);
      const callKey = header(req, INFERENCE_HEADERS.callKey);
      if (callKey !== undefined && !CALL_KEY.test(callKey)) throw invalid(`the ${INFERENCE_HEADERS.callKey} header is malformed`);
      const agent = header(req, INFERENCE_HEADERS.agent);
      if (agent !== undefined && !AGENT.test(agent)) throw invalid(`the ${INFERENCE_HEADERS.agent} header is malformed`);
      const runId = header(req, INFERENCE_HEADERS.run);
      if (runId !== undefined && !SESSION_ID.test(runId)) throw invalid(`the ${INFERENCE_HEADERS.run} header is malformed`);
      const body = checkChatRequest(await readJsonBody(req, maxBodyBytes));
      const stream = body.stream === true;
      const wantUsage = stream && body.stream_options?.include_usage === true;
      let placed: { replica: string; placement: string; model: string } | undefined;
      let routedAt = 0;
      let corked = false;
      const t0 = performance.now();
      const onChunk = stream
        ? (chunk: ChatChunk) => {
            if (chunk.choices.length === 0) return; // the usage chunk is sent at the end, with the final counts
            if (!streaming) {
              streaming = true;
              res.writeHead(200, {
                'content-type': 'text/event-stream',
                'cache-control': 'no-cache',
                connection: 'keep-alive',
                'x-agentmesh-replica': placed?.replica ?? '',
                'x-agentmesh-placement': placed?.placement ?? '',
                'x-agentmesh-model': placed?.model ?? '',
                'server-timing': `router;dur=${(routedAt - t0).toFixed(3)}`,
              });
            }
            // chunks that arrived together leave together: one write per turn of the event loop
            if (!corked) {
              corked = true;
              res.cork();
              process.nextTick(() => {
                corked = false;
                res.uncork();
              });
            }
            res.write(`data: ${JSON.stringify(chunk)}\n\n`);
          }
        : undefined;
      const out = await this.inference.chat({
        tenantId,
        ...(session !== undefined ? { session } : {}),
        ...(runId !== undefined ? { runId } : {}),
        ...(callKey !== undefined ? { callKey } : {}),
        ...(agent !== undefined ? { agent } : {}),
        ...(hint !== undefined ? { hint: hint as ModelHint } : {}),
        model: body.model,
        request: body,
        stream,
        onChunk,
        onPlaced: (p) => {
          placed = p;
          routedAt = performance.now();
        },
        signal: ac.signal,
      });
      if (ac.signal.aborted) return;
      if (stream) {
        if (!streaming) {
          streaming = true;
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-agentmesh-replica': out.replica, 'x-agentmesh-placement': out.placement, 'x-agentmesh-model': out.model });
        }
        let tail = '';
        if (wantUsage) {
          const usageChunk: ChatChunk = { id: out.completion.id, object: 'chat.completion.chunk', created: out.completion.created, model: out.completion.model, choices: [], usage: out.completion.usage };
          tail = `data: ${JSON.stringify(usageChunk)}\n\n`;
        }
        res.end(`${tail}data: [DONE]\n\n`);
        return;
      }
      const data = JSON.stringify(out.completion);
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(data),
        'x-agentmesh-replica': out.replica,
        'x-agentmesh-placement': out.placement,
        'x-agentmesh-model': out.model,
        'server-timing': serverTiming(out.timing),
      });
      res.end(data);
    } catch (e) {
      if (ac.signal.aborted && !(e instanceof AgentmeshError && e.code !== 'unavailable')) return;
      const h = httpError(e, this.logger);
      if (streaming) {
        // the stream started: the error goes in it, as OpenAI-compatible servers do
        res.end(`data: ${JSON.stringify({ error: { message: h.message, type: 'server_error', code: h.code } })}\n\ndata: [DONE]\n\n`);
        return;
      }
      sendError(res, h.status, h.code, h.message, h.headers, h.extra);
    }
  }
}

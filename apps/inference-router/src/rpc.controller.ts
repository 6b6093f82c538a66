import { Inject } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  inferenceDeltaSubject, invalid, isTenantId, SESSION_ID,
  type InferenceChatRequest, type InferenceChatResponse, type InferenceDelta, type RpcMap,
} from '#libs/contracts';
import { encodeJson, MessageController, NATS, OnRpc } from '#libs/messaging';
import { InferenceService } from './inference.service.js';
import type { ChatChunk, ChatCompletionRequest } from './upstream/types.js';
import { checkChatRequest } from './validation.js';

const CALL_KEY = /^[A-Za-z0-9_:.-]{1,200}$/;
const AGENT = /^[A-Za-z0-9_.-]{1,64}$/;

function check(req: InferenceChatRequest): ChatCompletionRequest {
  if (typeof req !== 'object' || req === null) throw invalid('the request must be an object');
  if (!isTenantId(req.tenantId)) throw invalid('tenantId is not a tenant id', [{ field: 'tenantId', message: 'is not a tenant id' }]);
  if (typeof req.runId !== 'string' || !SESSION_ID.test(req.runId)) throw invalid('runId is malformed', [{ field: 'runId', message: 'is malformed' }]);
  if (typeof req.sessionId !== 'string' || !SESSION_ID.test(req.sessionId)) throw invalid(`sessionId must match ${SESSION_ID.source}`, [{ field: 'sessionId', message: 'is malformed' }]);
  if (!Number.isInteger(req.step) || req.step < 0) throw invalid('step must be a non-negative integer', [{ field: 'step', message: 'must be a non-negative integer' }]);
  if (req.hint !== undefined && req.hint !== 'easy' && req.hint !== 'hard') throw invalid('hint must be easy or hard', [{ field: 'hint', message: 'must be easy or hard' }]);
  if (req.callKey !== undefined && (typeof req.callKey !== 'string' || !CALL_KEY.test(req.callKey))) throw invalid('callKey is malformed', [{ field: 'callKey', message: 'is malformed' }]);
  if (req.agent !== undefined && (typeof req.agent !== 'string' || !AGENT.test(req.agent))) throw invalid('agent is malformed', [{ field: 'agent', message: 'is malformed' }]);
  if (req.stream !== undefined && typeof req.stream !== 'boolean') throw invalid('stream must be a boolean', [{ field: 'stream', message: 'must be a boolean' }]);
  return checkChatRequest({
    messages: req.messages,
    ...(req.model !== undefined ? { model: req.model } : {}),
    ...(req.tools !== undefined ? { tools: req.tools } : {}),
    ...(req.tool_choice !== undefined ? { tool_choice: req.tool_choice } : {}),
    ...(req.max_tokens !== undefined ? { max_tokens: req.max_tokens } : {}),
    ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
  });
}

/**
 * `inference.chat` and `inference.release` for the orchestrator (NATS request/reply, queue group
 * `inference-router`). Streamed calls publish their deltas to `inference.v1.delta.<tenant>.<runId>`
 * (core NATS, at most once, `seq` numbered) and answer with the whole reply when done.
 */
@MessageController()
export class InferenceRpcController {
  constructor(private readonly inference: InferenceService, @Inject(NATS) private readonly nc: NatsConnection) {}

  @OnRpc('inference.chat')
  async chat(@Payload() req: RpcMap['inference.chat']['req']): Promise<InferenceChatResponse> {
    const request = check(req);
    const stream = req.stream === true;
    let seq = 0;
    const subject = stream ? inferenceDeltaSubject(req.tenantId, req.runId) : '';
    const onChunk = stream
      ? (chunk: ChatChunk) => {
          const c = chunk.choices[0];
          if (c === undefined) return;
          const d: InferenceDelta = { runId: req.runId, step: req.step, seq, ...(req.callKey ? { callKey: req.callKey } : {}) };
          if (typeof c.delta.content === 'string' && c.delta.content !== '') d.content = c.delta.content;
          if (c.delta.tool_calls && c.delta.tool_calls.length > 0) {
            d.tool_calls = c.delta.tool_calls.map((t) => ({ index: t.index, ...(t.id ? { id: t.id } : {}), function: { ...(t.function?.name ? { name: t.function.name } : {}), ...(t.function?.arguments ? { arguments: t.function.arguments } : {}) } }));
          }
          if (c.finish_reason) d.finishReason = c.finish_reason;
          if (d.content === undefined && d.tool_calls === undefined && d.finishReason === undefined) return;
          seq++;
          this.nc.publish(subject, encodeJson(d));
        }
      : undefined;
    const out = await this.inference.chat({
      tenantId: req.tenantId,
      session: req.sessionId,
      runId: req.runId,
      step: req.step,
      ...(req.callKey !== undefined ? { callKey: req.callKey } : {}),
      ...(req.agent !== undefined ? { agent: req.agent } : {}),
      ...(req.hint !== undefined ? { hint: req.hint } : {}),
      model: req.model,
      request,
      stream,
      onChunk,
      awaitSettle: true,
    });
    const m = out.completion.choices[0].message;
    return {
      id: out.id,
      model: out.model,
      tier: out.tier,
      rule: out.rule,
      replica: out.replica,
      placement: out.placement,
      message: { role: 'assistant', content: m.content, ...(m.tool_calls && m.tool_calls.length > 0 ? { tool_calls: m.tool_calls } : {}) },
      finishReason: out.finishReason,
      usage: out.usage,
      costUsd: out.costUsd,
      ...(out.settled ? { settled: out.settled } : {}),
      timing: { queuedMs: out.timing.queuedMs, firstTokenMs: out.timing.firstTokenMs, totalMs: out.timing.totalMs },
    };
  }

  @OnRpc('inference.release')
  release(@Payload() req: RpcMap['inference.release']['req']): { released: number } {
    if (!isTenantId(req?.tenantId)) throw invalid('tenantId is not a tenant id');
    if (typeof req.sessionId !== 'string' || !SESSION_ID.test(req.sessionId)) throw invalid('sessionId is malformed');
    return { released: this.inference.release(req.tenantId, req.sessionId) };
  }
}

import type { NatsConnection } from '@nats-io/transport-node';
import {
  AgentmeshError, inferenceDeltaSubject,
  type ChatTool, type InferenceChatRequest, type InferenceChatResponse, type InferenceDelta,
} from '#libs/contracts';
import { dearestModelPrice, llmWorstCaseAtPrice, modelPrice, type AppConfig } from '#libs/config';
import type { LlmRequest, RunState } from '#libs/engine';
import { decodeJson, RetryLaterError, RpcClient } from '#libs/messaging';
import { countPromptTokens } from '#libs/tokens';
import type { ToolCatalog } from './tool-catalog.js';

/** Streamed text is written to the journal in pieces of at least this many characters... */
export const DELTA_FLUSH_CHARS = 64;
/** ...or after this long, whichever comes first (keeps `llm.delta` events few and the stream live). */
export const DELTA_FLUSH_MS = 50;

/** An LLM call ready to go: the `inference.chat` request and its worst-case cost. */
export interface PreparedCall {
  request: InferenceChatRequest;
  /** The model priced (the named one) or undefined (the router chooses: the dearest price is assumed). */
  model?: string;
  promptTokens: number;
  worstUsd: number;
}

/** The model refused the request or does not exist: calling again would not help. */
export class LlmRefusedError extends Error {
  override readonly name = 'LlmRefusedError';
  readonly code = 'llm_refused';
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
  }
}

/**
 * Coalesces streamed text: `push` pieces, `flush` is called with at least DELTA_FLUSH_CHARS
 * characters or DELTA_FLUSH_MS after the first buffered piece.
 */
export class DeltaCoalescer {
  private buf = '';
  private timer?: NodeJS.Timeout;
  constructor(private readonly out: (text: string) => void, private readonly chars = DELTA_FLUSH_CHARS, private readonly ms = DELTA_FLUSH_MS) {}

  push(text: string): void {
    if (text === '') return;
    this.buf += text;
    if (this.buf.length >= this.chars) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.ms);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.buf === '') return;
    const text = this.buf;
    this.buf = '';
    this.out(text);
  }
}

/**
 * The orchestrator's side of `inference.chat`: builds the request of an LLM step (the pinned tools'
 * definitions as OpenAI function tools, the session as the router's affinity key, `max_tokens`),
 * prices its worst case (prompt tokens counted with js-tiktoken plus `max_tokens`, at the model's
 * price, or the dearest price when the router picks the model), and makes the call with streaming,
 * handing the text deltas to the caller as they come.
 */
export class LlmCaller {
  private readonly rpc: RpcClient;

  constructor(private readonly nc: NatsConnection, private readonly config: AppConfig, private readonly catalog: ToolCatalog) {
    this.rpc = new RpcClient(nc, config.llmTimeoutMs);
  }

  async prepare(s: RunState, call: { step: number; callKey: string; request: LlmRequest }): Promise<PreparedCall> {
    const r = call.request;
    const pinned = r.tools.map((n) => s.tools[n]).filter((t) => t !== undefined);
    const defs = await this.catalog.describe(s.tenantId, pinned);
    const tools: ChatTool[] = pinned.map((t) => {
      const d = defs.get(t.name);
      return {
        type: 'function',
        function: { name: t.name, ...(d?.description ? { description: d.description } : {}), parameters: d?.inputSchema ?? { type: 'object' } },
      };
    });
    const maxTokens = r.maxTokens ?? this.config.prices.defaultMaxOutputTokens;
    const request: InferenceChatRequest = {
      tenantId: s.tenantId,
      runId: s.runId,
      step: call.step,
      // the session's turns share a replica (and its prefix cache); a run without one is its own session
      sessionId: s.sessionId ?? s.runId,
      ...(r.model ? { model: r.model } : {}),
      ...(r.hint ? { hint: r.hint } : {}),
      messages: r.messages,
      ...(tools.length > 0 ? { tools } : {}),
      max_tokens: maxTokens,
      ...(r.temperature !== undefined ? { temperature: r.temperature } : {}),
      stream: true,
      ...(s.agent ? { agent: s.agent.name } : {}),
    };
    const promptTokens = await countPromptTokens(r.model, r.messages, tools);
    const price = r.model ? modelPrice(this.config.prices, r.model) : dearestModelPrice(this.config.prices);
    return { request, model: r.model, promptTokens, worstUsd: llmWorstCaseAtPrice(price, promptTokens, maxTokens) };
  }

  /**
   * Makes the call. `onText` gets the reply's text as it streams (coalesced). Refusals for good
   * (the model does not exist, the request is invalid) throw LlmRefusedError; anything else
   * (router or replicas down, busy, timed out) throws RetryLaterError: the run waits and the call
   * is made again.
   */
  async call(req: InferenceChatRequest, onText: (text: string) => void): Promise<InferenceChatResponse> {
    let open = true;
    const coalescer = new DeltaCoalescer((text) => { if (open) onText(text); });
    // a callback subscription sees the deltas in the order the router sent them, all before its reply
    const sub = this.nc.subscribe(inferenceDeltaSubject(req.tenantId, req.runId), {
      callback: (err, m) => {
        if (err || !open) return;
        let d: InferenceDelta;
        try { d = decodeJson<InferenceDelta>(m.data); } catch { return; }
        if (d.step !== req.step || (req.callKey !== undefined && d.callKey !== req.callKey)) return;
        if (d.content) coalescer.push(d.content);
      },
    });
    try {
      const res = await this.rpc.call('inference.chat', req);
      coalescer.flush();
      open = false;
      return res;
    } catch (e) {
      if (e instanceof AgentmeshError && (e.code === 'invalid_argument' || e.code === 'not_found' || e.code === 'permission_denied' || e.code === 'payload_too_large')) {
        throw new LlmRefusedError(e.message, { cause: e });
      }
      throw new RetryLaterError(`the LLM call could not be made (${e instanceof Error ? e.message : String(e)}); the run waits and calls again`, 1000, { cause: e });
    } finally {
      open = false;
      coalescer.flush();
      sub.unsubscribe();
    }
  }
}

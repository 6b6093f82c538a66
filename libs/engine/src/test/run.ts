/**
 * A tiny in-memory journal for the engine's specs: appends assign sequences and fold into the
 * state; `decide` applies a decision's events and returns its effects. Not exported by the lib.
 */
import type { AgentSpec, AnyJournalEvent, AnyNewJournalEvent, InferenceChatResponse, JsonValue, PinnedTool, SessionContext } from '#libs/contracts';
import { budgetReservedEvent, budgetSettledEvent, createdEvent, decide, llmCompletedEvent, toolOutcomeEvent, toolsResolvedEvent, type Effect } from '../decide.js';
import { initialState, reduce, type RunState } from '../state.js';

export const NOW = '2026-01-01T00:00:00.000Z';
export const OPTS = { now: NOW, globalMaxSteps: 200, redispatch: false };

export type LlmReply = Pick<InferenceChatResponse, 'message' | 'usage' | 'costUsd' | 'model' | 'replica' | 'finishReason'>;

/** A model reply: text, or tool calls `[name, args]`. */
export function reply(content: string | null, calls: Array<[string, JsonValue | string]> = [], usage = { inputTokens: 120, outputTokens: 30 }): LlmReply {
  return {
    message: {
      role: 'assistant', content,
      ...(calls.length ? { tool_calls: calls.map(([name, args], i) => ({ id: `call_${i}`, type: 'function' as const, function: { name, arguments: typeof args === 'string' ? args : JSON.stringify(args) } })) } : {}),
    },
    usage: { ...usage, cachedTokens: 0, source: 'upstream' },
    costUsd: 0.0012, model: 'sim-70b', replica: 'sim-0', finishReason: calls.length ? 'tool_calls' : 'stop',
  };
}

export class TestRun {
  s: RunState;
  journal: AnyJournalEvent[] = [];
  constructor(runId = 'run_01HZZZZZZZZZZZZZZZZZZZZZZZ', tenantId = 'acme') {
    this.s = initialState(tenantId, runId);
  }
  append(e: AnyNewJournalEvent | null): void {
    if (!e) return;
    const full = { ...e, seq: this.journal.length + 1 } as AnyJournalEvent;
    this.journal.push(full);
    this.s = reduce(this.s, full);
  }
  start(agent: AgentSpec, tools: Record<string, PinnedTool>, input: JsonValue, opts: { sessionId?: string; session?: SessionContext } = {}): void {
    this.append(createdEvent(this.s, NOW, { tenantId: this.s.tenantId, runId: this.s.runId, agent, input, ...(opts.sessionId ? { sessionId: opts.sessionId } : {}) }));
    const started = toolsResolvedEvent(this.s, NOW, tools);
    if (opts.session && started.type === 'run.started') started.data.session = opts.session;
    this.append(started);
  }
  /** Applies one decision's events; returns its effects. */
  decide(redispatch = false): Effect[] {
    const d = decide(this.s, { ...OPTS, redispatch });
    d.events.forEach((e) => this.append(e));
    return d.effects;
  }
  /** Records the LLM's reply to the call in flight (optionally after a reservation and with its settlement). */
  llm(r: LlmReply, reservedUsd?: number): void {
    const l = this.s.llmCall!;
    this.append(llmCompletedEvent(this.s, NOW, l.callKey, r));
    if (reservedUsd !== undefined) this.append(budgetSettledEvent(this.s, NOW, l.step, l.callKey, r.costUsd));
  }
  reserve(usd: number): void {
    const key = `${this.s.runId}:${this.s.step}:0`;
    this.append(budgetReservedEvent(this.s, NOW, this.s.step, key, usd));
  }
  tool(result: JsonValue, ok = true): void {
    const f = this.s.inFlight!;
    this.append(toolOutcomeEvent(this.s, NOW, ok
      ? { tenantId: this.s.tenantId, runId: this.s.runId, step: f.step, callKey: f.callKey, durationMs: 1, ok: true, result }
      : { tenantId: this.s.tenantId, runId: this.s.runId, step: f.step, callKey: f.callKey, durationMs: 1, ok: false, error: { code: 'http_500', message: String(result) } }));
  }
}

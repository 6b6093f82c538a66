import {
  isCompatiblePlannerProtocol, PLANNER_PROTOCOL,
  type PlannerDecision, type PlannerReply, type PlannerRequest, type PlannerStepView,
} from '#libs/contracts';
import { createContext, type PlannerContext } from './context.js';
import { InvalidDecisionError, PlannerProtocolError, PlannerRetryLater } from './errors.js';

/**
 * What a planner sees of a run when it decides (planner.v1): the agent (instructions, limits), its
 * tools (with descriptions and input schemas), the input, the session's earlier turns and memory,
 * every finished step of the run with its outcome (tool results, LLM replies), the partial outputs
 * emitted so far, and the step count and cap.
 */
export type PlannerView = PlannerRequest;
export type PlannerStep = PlannerStepView;
export type ToolStep = Extract<PlannerStepView, { kind: 'tool' }>;
export type LlmStep = Extract<PlannerStepView, { kind: 'llm' }>;

/**
 * A planner: a function of the run's view that returns the next decision. It must decide from the
 * view and the context only (no clock, no randomness, no outside reads that would change the
 * answer): the platform asks again for the same decision after a crash until it records an answer.
 */
export interface PlannerDefinition {
  /** The name agents give as `planner` (letters, digits, `_`, `-`, `.`). */
  readonly name: string;
  decide(view: PlannerView, ctx: PlannerContext): PlannerDecision | Promise<PlannerDecision>;
}

const NAME = /^[a-zA-Z][a-zA-Z0-9_.-]{0,63}$/;
const KINDS = new Set(['call_tool', 'call_llm', 'emit', 'finish', 'fail']);

/** Declares a planner (checks its name). */
export function definePlanner(def: PlannerDefinition): PlannerDefinition {
  if (!NAME.test(def.name) || def.name === 'graph' || def.name === 'react') {
    throw new TypeError(`planner name "${def.name}" must match ${NAME.source} and not be a builtin planner (graph, react)`);
  }
  if (typeof def.decide !== 'function') throw new TypeError('a planner needs a decide function');
  return Object.freeze({ ...def });
}

/** The last step of the view, if any. */
export const lastStep = (view: PlannerView): PlannerStep | undefined => view.steps[view.steps.length - 1];
/** The tool step with this id (`callTool(..., {id})`), if it has finished. */
export const toolStep = (view: PlannerView, id: string): ToolStep | undefined =>
  view.steps.find((s): s is ToolStep => s.kind === 'tool' && s.id === id);
/** The steps since the start of the run or since `afterStep`. */
export const stepsAfter = (view: PlannerView, afterStep: number): PlannerStep[] => view.steps.filter((s) => s.step > afterStep);
/** The run's input as text (strings as they are; `{text}` objects by their text; anything else as JSON). */
export function inputText(view: PlannerView): string {
  const i = view.input;
  if (typeof i === 'string') return i;
  if (i !== null && typeof i === 'object' && !Array.isArray(i) && typeof i.text === 'string') return i.text;
  return JSON.stringify(i);
}

function checkRequest(req: unknown): PlannerRequest {
  if (req === null || typeof req !== 'object' || Array.isArray(req)) throw new PlannerProtocolError(undefined, 'the request is not a planner request');
  const r = req as Partial<PlannerRequest>;
  if (!isCompatiblePlannerProtocol(r.protocol)) {
    throw new PlannerProtocolError(r.protocol, `this planner speaks ${PLANNER_PROTOCOL}; the request is ${String(r.protocol)}`);
  }
  for (const k of ['tenantId', 'runId', 'decisionKey'] as const) {
    if (typeof r[k] !== 'string') throw new PlannerProtocolError(r.protocol, `the request has no ${k}`);
  }
  if (!Array.isArray(r.steps) || !r.session || typeof r.session !== 'object') throw new PlannerProtocolError(r.protocol, 'the request has no steps or session');
  return r as PlannerRequest;
}

function checkDecision(d: unknown): PlannerDecision {
  if (d === null || typeof d !== 'object' || !KINDS.has((d as { kind?: string }).kind ?? '')) {
    throw new InvalidDecisionError(`decide returned ${JSON.stringify(d)?.slice(0, 200)}, not a decision (use ctx.callTool, ctx.callLlm, ctx.partial, ctx.finish or ctx.fail)`);
  }
  return d as PlannerDecision;
}

/**
 * Answers one planner.v1 request with the planner: the whole protocol without the transport.
 * The SDK's server calls it for every request; tests call it with a hand-made view.
 *
 * - `decide` returns a decision: the reply carries it with the memory writes and emitted text.
 * - `decide` throws PlannerRetryLater: `retry_later` (the run waits and asks again).
 * - `decide` throws anything else (PlannerFailure, an Error, a bad decision): `planner_failed`
 *   with the error's message (the run fails `planner_error`).
 * - The request is not planner.v1: `incompatible_protocol`.
 */
export async function answer(planner: PlannerDefinition, request: unknown, opts: { protocol?: string } = {}): Promise<PlannerReply> {
  const protocol = opts.protocol ?? PLANNER_PROTOCOL;
  let req: PlannerRequest;
  try {
    req = checkRequest(request);
  } catch (e) {
    return { protocol, ok: false, error: { code: 'incompatible_protocol', message: (e as Error).message } };
  }
  const { ctx, writes, emitted } = createContext(req);
  try {
    const decision = checkDecision(await planner.decide(req, ctx));
    return {
      protocol, ok: true, decision,
      ...(Object.keys(writes).length > 0 ? { memory: writes } : {}),
      ...(emitted.length > 0 ? { emit: emitted } : {}),
    };
  } catch (e) {
    if (e instanceof PlannerRetryLater) return { protocol, ok: false, error: { code: 'retry_later', message: e.message, retryAfterMs: e.retryAfterMs } };
    const message = e instanceof Error ? e.message : String(e);
    return { protocol, ok: false, error: { code: 'planner_failed', message: message || 'the planner failed' } };
  }
}

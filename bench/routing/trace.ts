import { Rng } from './rng.js';

export interface TraceParams {
  readonly seed: number;
  readonly sessions: number;
  readonly turnsPerSession: number;
  /** Poisson session arrivals (sessions per second). */
  readonly arrivalsPerSec: number;
  /** Agent types; sessions of one type share a system prompt + tool schemas (a cacheable prefix). */
  readonly agentTypes: number;
  readonly systemTokens: { readonly min: number; readonly max: number };
  readonly taskTokens: LogNormal;
  /** Tokens the model writes per turn (reasoning + a tool call, or the final answer). */
  readonly outputTokens: LogNormal;
  /** Tokens a tool result adds to the context. */
  readonly toolResultTokens: LogNormal;
  /** Think-act gap: tool execution time between a reply and the next turn. */
  readonly toolGapMs: LogNormal;
}

export interface LogNormal {
  readonly median: number;
  readonly sigma: number;
  readonly min: number;
  readonly max: number;
}

export const DEFAULT_TRACE: TraceParams = {
  seed: 42,
  sessions: 240,
  turnsPerSession: 10,
  arrivalsPerSec: 0.5,
  agentTypes: 8,
  systemTokens: { min: 1500, max: 4000 },
  taskTokens: { median: 300, sigma: 0.6, min: 30, max: 3000 },
  outputTokens: { median: 120, sigma: 0.6, min: 16, max: 1000 },
  toolResultTokens: { median: 600, sigma: 1.0, min: 30, max: 8000 },
  toolGapMs: { median: 2000, sigma: 0.8, min: 100, max: 30_000 },
};

export interface TurnTrace {
  readonly promptTokens: number;
  readonly outputTokens: number;
  /** Tool result appended after this turn (0 on the last turn). */
  readonly toolResultTokens: number;
  /** Wait before the next turn arrives (0 on the last turn). */
  readonly toolGapMs: number;
}

export interface SessionTrace {
  readonly index: number;
  readonly id: string;
  readonly agentType: number;
  readonly arrivalMs: number;
  readonly systemTokens: number;
  readonly turns: readonly TurnTrace[];
}

export interface Trace {
  readonly params: TraceParams;
  readonly systemTokensByType: readonly number[];
  readonly sessions: readonly SessionTrace[];
}

const draw = (rng: Rng, d: LogNormal) => Math.round(rng.lognormal(d.median, d.sigma, d.min, d.max));

/**
 * A multi-turn agent trace: Poisson session arrivals; each session's context starts with its
 * agent type's system prompt and its task, and grows every turn by the model's output and the
 * tool result; turns are separated by tool execution gaps.
 */
export function generateTrace(params: TraceParams): Trace {
  const rng = new Rng(params.seed);
  const systemTokensByType = Array.from({ length: params.agentTypes }, () => rng.int(params.systemTokens.min, params.systemTokens.max));
  const sessions: SessionTrace[] = [];
  let t = 0;
  for (let i = 0; i < params.sessions; i++) {
    t += rng.exponential(1000 / params.arrivalsPerSec);
    const agentType = rng.int(0, params.agentTypes - 1);
    const systemTokens = systemTokensByType[agentType];
    let context = systemTokens + draw(rng, params.taskTokens);
    const turns: TurnTrace[] = [];
    for (let k = 0; k < params.turnsPerSession; k++) {
      const last = k === params.turnsPerSession - 1;
      const outputTokens = draw(rng, params.outputTokens);
      const toolResultTokens = last ? 0 : draw(rng, params.toolResultTokens);
      const toolGapMs = last ? 0 : draw(rng, params.toolGapMs);
      turns.push({ promptTokens: context, outputTokens, toolResultTokens, toolGapMs });
      context += outputTokens + toolResultTokens;
    }
    sessions.push({ index: i, id: `tenant-${i % 7}/session-${i}`, agentType, arrivalMs: Math.round(t), systemTokens, turns });
  }
  return { params, systemTokensByType, sessions };
}

const STRIDE = 2 ** 16;

/**
 * Chain keys of a turn's full KV blocks. Blocks wholly inside the agent type's system prompt are
 * shared by every session of that type (odd keys); the rest belong to the session (even keys):
 * its context is append-only, so block i of turn t equals block i of turn t+1. Keys stay small
 * integers for traces of a few thousand sessions, which keeps the cache's maps fast.
 */
export function turnBlockKeys(session: SessionTrace, promptTokens: number, blockSize: number): number[] {
  const full = Math.floor(promptTokens / blockSize);
  if (full >= STRIDE) throw new RangeError(`prompt of ${promptTokens} tokens has too many blocks for the key scheme`);
  const keys = new Array<number>(full);
  for (let i = 0; i < full; i++) {
    keys[i] = (i + 1) * blockSize <= session.systemTokens ? 2 * (session.agentType * STRIDE + i) + 1 : 2 * ((session.index + 1) * STRIDE + i);
  }
  return keys;
}

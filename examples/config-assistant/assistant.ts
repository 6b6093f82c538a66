import {
  definePlanner, PlannerFailure, toolStep,
  type JsonValue, type PlannerContext, type PlannerDecision, type PlannerDefinition, type PlannerToolView, type PlannerView, type ToolStep,
} from '#libs/sdk';
import { parseIntent, type Intent } from './intent.js';

/**
 * config-assistant: a confirm-before-write planner. It never changes configuration in the turn
 * the change is asked for: it proposes the change (with the current value, when the agent has a
 * read tool), keeps the proposal in the session's memory, and applies it with the agent's write
 * tool only when a later turn of the same session confirms it.
 *
 * Conversation states (kept in session memory under MEMORY_KEY between turns):
 *
 *     idle ──"set k to v"──▶ [reading] ──▶ awaiting_confirmation ──"yes"──▶ [applying] ──▶ done (idle)
 *       │                                  │   ▲        │
 *       └──"set k"──▶ collecting ──"v"─────┘   └─"set"──┘──"no"──▶ idle (discarded)
 *
 * Bracketed states last within one run (a tool step); the others span turns.
 */

type JsonObject = { [k: string]: JsonValue };

/** Session memory key of the conversation state (absent: idle). */
export const MEMORY_KEY = 'config-assistant/conversation';
/** Session memory key of the changes applied so far (newest last, at most HISTORY_LIMIT). */
export const HISTORY_KEY = 'config-assistant/applied';
export const HISTORY_LIMIT = 20;
/** Step ids of the tool calls, so a later decision of the same run finds their outcome. */
export const READ_STEP = 'read';
export const WRITE_STEP = 'write';

/** A proposed change. `previous` is the value the read tool reported (absent: unknown). */
export interface Change {
  key: string;
  value: JsonValue;
  previous?: JsonValue;
}

/** The conversation state persisted across turns. */
export type Conversation =
  | { phase: 'collecting'; key: string; since: string }
  | { phase: 'awaiting_confirmation'; change: Change; proposedIn: string };

/**
 * What each turn outputs (the run's output): the conversation state after the turn, a sentence
 * for the user, and the change proposed, pending or applied (and the write tool's result when
 * `done`).
 */
export interface TurnOutput {
  state: 'idle' | 'collecting' | 'awaiting_confirmation' | 'done';
  message: string;
  change?: Change;
  result?: JsonValue;
}

export interface ConfigAssistantOptions {
  /** The name agents give as `planner` (default `config-assistant`). */
  name?: string;
  /** The write tool (default: the agent's first tool with risk tier `write`). Called with `{key, value}`. */
  writeTool?: string;
  /** The read tool (default: the agent's first tool with risk tier `read`, if any). Called with `{key}`; `{value}` or `{found, value}` back. */
  readTool?: string;
}

const isRecord = (v: unknown): v is Record<string, JsonValue> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A change as JSON (no undefined fields). */
const changeJson = (c: Change): JsonObject => ({ key: c.key, value: c.value, ...(c.previous !== undefined ? { previous: c.previous } : {}) });

/** The conversation state read back from memory (anything unexpected reads as idle). */
export function conversationOf(v: JsonValue | undefined): Conversation | undefined {
  if (!isRecord(v)) return undefined;
  if (v.phase === 'collecting' && typeof v.key === 'string') return { phase: 'collecting', key: v.key, since: String(v.since ?? '') };
  const c = v.change;
  if (v.phase === 'awaiting_confirmation' && isRecord(c) && typeof c.key === 'string' && 'value' in c) {
    return { phase: 'awaiting_confirmation', change: { key: c.key, value: c.value, ...('previous' in c ? { previous: c.previous } : {}) }, proposedIn: String(v.proposedIn ?? '') };
  }
  return undefined;
}

function conversationJson(c: Conversation): JsonObject {
  return c.phase === 'collecting' ? { phase: c.phase, key: c.key, since: c.since } : { phase: c.phase, change: changeJson(c.change), proposedIn: c.proposedIn };
}

const show = (v: JsonValue | undefined): string => (v === undefined ? 'unknown' : JSON.stringify(v));

function findTool(tools: PlannerToolView[], name: string | undefined, tier: 'read' | 'write'): PlannerToolView | undefined {
  return name !== undefined ? tools.find((t) => t.name === name) : tools.find((t) => t.riskTier === tier);
}

/** The current value a read step reported: `{found: false}` → null, `{value}` → value, anything else as it is. */
function currentValue(step: ToolStep | undefined): JsonValue | undefined {
  if (!step?.ok || step.result === undefined) return undefined;
  const r = step.result;
  if (isRecord(r)) {
    if (r.found === false) return null;
    if ('value' in r) return r.value;
  }
  return r;
}

/**
 * What the turn asks for, given the conversation so far: a pure function of the input and the
 * state, so every decision of the run (asked again after each tool step) reads the same.
 */
export type Plan =
  | { kind: 'propose'; change: Change }
  | { kind: 'apply'; change: Change }
  | { kind: 'discard'; what: string }
  | { kind: 'ask_value'; key: string }
  | { kind: 'remind'; change: Change; text: string }
  | { kind: 'nothing_pending' }
  | { kind: 'help'; text: string };

export function planTurn(intent: Intent, conv: Conversation | undefined): Plan {
  switch (intent.kind) {
    case 'set':
      return intent.value === undefined ? { kind: 'ask_value', key: intent.key } : { kind: 'propose', change: { key: intent.key, value: intent.value } };
    case 'confirm':
      return conv?.phase === 'awaiting_confirmation' ? { kind: 'apply', change: conv.change } : { kind: 'nothing_pending' };
    case 'reject':
      if (conv?.phase === 'awaiting_confirmation') return { kind: 'discard', what: `the change of ${conv.change.key} to ${show(conv.change.value)}` };
      if (conv?.phase === 'collecting') return { kind: 'discard', what: `the change of ${conv.key}` };
      return { kind: 'nothing_pending' };
    case 'other':
      if (conv?.phase === 'collecting' && intent.text !== '') return { kind: 'propose', change: { key: conv.key, value: parseValueOf(intent.text) } };
      if (conv?.phase === 'awaiting_confirmation') return { kind: 'remind', change: conv.change, text: intent.text };
      return { kind: 'help', text: intent.text };
  }
}

// a bare answer to "what value should X get?" is read like the value of `set X to ...`
function parseValueOf(text: string): JsonValue {
  const i = parseIntent(`set x to ${text}`);
  return i.kind === 'set' && i.value !== undefined ? i.value : text;
}

const HELP = 'I change configuration, one key at a time, and only after you confirm. Say "set <key> to <value>".';

function proposal(change: Change): string {
  const from = change.previous === undefined ? '' : ` (now ${show(change.previous)})`;
  return `I will set ${change.key} to ${show(change.value)}${from}. Reply "yes" to apply it or "no" to discard it.`;
}

/** Creates the planner (the options pick its name and tools). */
export function createConfigAssistant(options: ConfigAssistantOptions = {}): PlannerDefinition {
  const name = options.name ?? 'config-assistant';
  return definePlanner({
    name,
    decide(view: PlannerView, ctx: PlannerContext): PlannerDecision {
      const write = findTool(view.tools, options.writeTool, 'write');
      if (!write) {
        // a configuration problem of the agent, not of the user: the run fails planner_error
        throw new PlannerFailure(options.writeTool !== undefined
          ? `${name}: agent "${view.agent.name}" has no tool "${options.writeTool}" to apply changes with`
          : `${name}: agent "${view.agent.name}" has no tool with risk tier "write" to apply changes with`);
      }
      const read = findTool(view.tools, options.readTool, 'read');
      const conv = conversationOf(ctx.memory.get(MEMORY_KEY));
      const plan = planTurn(parseIntent(view.input), conv);
      const done = (out: TurnOutput): PlannerDecision => ctx.finish({
        state: out.state, message: out.message,
        ...(out.change ? { change: changeJson(out.change) } : {}), ...(out.result !== undefined ? { result: out.result } : {}),
      });
      const remember = (c: Conversation): void => ctx.memory.set(MEMORY_KEY, conversationJson(c));

      switch (plan.kind) {
        case 'ask_value':
          remember({ phase: 'collecting', key: plan.key, since: view.runId });
          return done({ state: 'collecting', message: `What value should ${plan.key} get?` });

        case 'propose': {
          // state "reading": ask the read tool for the current value first, once
          const readStep = toolStep(view, READ_STEP);
          if (read && !readStep) return ctx.callTool(read.name, { key: plan.change.key }, { id: READ_STEP });
          const previous = currentValue(readStep);
          const change: Change = { ...plan.change, ...(previous !== undefined ? { previous } : {}) };
          remember({ phase: 'awaiting_confirmation', change, proposedIn: view.runId });
          return done({ state: 'awaiting_confirmation', message: proposal(change), change });
        }

        case 'apply': {
          // state "applying": the write tool, then done
          const writeStep = toolStep(view, WRITE_STEP);
          const { key, value } = plan.change;
          if (!writeStep) {
            ctx.emit(`Applying ${key} = ${show(value)}…`);
            return ctx.callTool(write.name, { key, value }, { id: WRITE_STEP });
          }
          if (!writeStep.ok) {
            // the proposal stays pending (nothing is written to memory): the user may try again
            const why = writeStep.error?.message ?? 'the write tool failed';
            return done({ state: 'awaiting_confirmation', message: `Could not apply ${key}: ${why}. Reply "yes" to try again or "no" to discard it.`, change: plan.change });
          }
          ctx.memory.delete(MEMORY_KEY);
          const history = ctx.memory.get<JsonValue[]>(HISTORY_KEY) ?? [];
          ctx.memory.set(HISTORY_KEY, [...history, { key, value, runId: view.runId }].slice(-HISTORY_LIMIT));
          return done({ state: 'done', message: `Applied: ${key} is now ${show(value)}.`, change: plan.change, result: writeStep.result ?? null });
        }

        case 'discard':
          ctx.memory.delete(MEMORY_KEY);
          return done({ state: 'idle', message: `Discarded ${plan.what}. Nothing was changed.` });

        case 'remind':
          return done({ state: 'awaiting_confirmation', message: `A change is waiting for your answer. ${proposal(plan.change)}`, change: plan.change });

        case 'nothing_pending':
          return done({ state: conv?.phase === 'collecting' ? 'collecting' : 'idle', message: conv?.phase === 'collecting' ? `What value should ${conv.key} get?` : `There is no change waiting for confirmation. ${HELP}` });

        case 'help':
          return done({ state: 'idle', message: HELP });
      }
    },
  });
}

/** The planner with its default name and tools. */
export const configAssistant = createConfigAssistant();

/**
 * The planner SDK (planner.v1): bring your own reasoning engine to agentmesh. See README.md here.
 */
export {
  definePlanner, answer, lastStep, toolStep, stepsAfter, inputText,
  type PlannerDefinition, type PlannerView, type PlannerStep, type ToolStep, type LlmStep,
} from './planner.js';
export { servePlanner, type ServePlannerOptions, type PlannerServer } from './server.js';
export { decisions, type PlannerContext, type SessionMemory, type LlmCallOptions } from './context.js';
export {
  PlannerError, PlannerFailure, PlannerRetryLater, PlannerProtocolError, PlannerConnectionError, InvalidDecisionError,
  isPlannerError, isRetryLater, type PlannerErrorCode,
} from './errors.js';
export {
  PLANNER_PROTOCOL,
  type PlannerDecision, type PlannerReply, type PlannerRequest, type PlannerToolView, type SessionTurn, type AssistantMessage,
  type ChatMessage, type ChatToolCall, type ModelHint, type JsonValue,
} from '#libs/contracts';

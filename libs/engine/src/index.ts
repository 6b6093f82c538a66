export {
  initialState, reduce, foldEvents, isTerminal, summaryOf, shortDigest, JournalDivergenceError, assistantMessageOf,
  type RunState, type InFlightStep, type StepRecord, type ApprovalState, type LlmInFlight, type PlannerProgress,
} from './state.js';
export {
  decide, failEvent, toolsResolvedEvent, toolOutcomeEvent, cancelEvent, createdEvent,
  budgetReservedEvent, budgetSettledEvent, budgetExceededEvent, DEFAULT_LOOP_DETECTION,
  approvalDecisionEvent, approvalExpiredEvent, approvalIdOf, requiresApproval,
  llmCompletedEvent, llmDeltaEvent, plannerDecidedEvent, usesSession, isExternalPlanner,
  type Decision, type DecideOptions, type Effect, type LoopDetection,
} from './decide.js';
export { renderTemplate, TemplateError, type TemplateScope } from './template.js';
export { graphPlanner, externalPlanner, plannerFor, type Planner, type PlannerAction } from './planner.js';
export { reactPlanner, reactRequest } from './react.js';
export { sessionMessages, transcriptMessages, textOf, type LlmRequest } from './llm.js';
export { plannerRequestOf, sessionMemoryOf } from './view.js';
export { replayJournal, type ReplayReport } from './replay.js';

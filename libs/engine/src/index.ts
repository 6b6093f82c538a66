export { initialState, reduce, foldEvents, isTerminal, summaryOf, shortDigest, JournalDivergenceError, type RunState, type InFlightStep, type StepRecord } from './state.js';
export {
  decide, failEvent, toolsResolvedEvent, toolOutcomeEvent, cancelEvent, createdEvent,
  budgetReservedEvent, budgetSettledEvent, budgetExceededEvent, DEFAULT_LOOP_DETECTION,
  type Decision, type DecideOptions, type Effect, type LoopDetection,
} from './decide.js';
export { renderTemplate, TemplateError, type TemplateScope } from './template.js';
export { graphPlanner, plannerFor, type Planner, type PlannerAction } from './planner.js';
export { replayJournal, type ReplayReport } from './replay.js';

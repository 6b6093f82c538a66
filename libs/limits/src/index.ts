/**
 * Per-tenant admission state shared by the services that change it: the concurrent-run cap's
 * active set (the gateway admits runs into it, the orchestrator removes them when they end).
 */
export { ActiveRuns, LOST_RUN_MS } from './active-runs.js';
export { activeCount, admit, EMPTY_SET, parseActiveSet, removeAll, type ActiveEntry, type ActiveSet } from './active-set.js';

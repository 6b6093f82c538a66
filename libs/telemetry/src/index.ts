export { registry, metrics, initMetrics } from './metrics.js';
export { createLogger, PinoNestLogger, type Logger } from './logger.js';
export { runWithTrace, currentTrace, currentTraceparent, childTraceparent, traceIdOf, type TraceContext } from './trace.js';
export { Readiness, HealthController, TelemetryModule } from './health.js';

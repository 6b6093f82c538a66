export { registry, metrics, initMetrics } from './metrics.js';
export { createLogger, PinoNestLogger, REDACT_PATHS, type Logger } from './logger.js';
export {
  runWithTrace, currentTrace, currentTraceparent, childTraceparent, traceIdOf, parseTraceparent, annotateTrace, safeId,
  traceFromMetadata, TRACE_HEADERS, type TraceContext, type Traceparent, type MetadataLike,
} from './trace.js';
export { Readiness, HealthController, TelemetryModule } from './health.js';

import type { LoggerService } from '@nestjs/common';
import { pino, type Logger } from 'pino';
import { currentTrace, traceIdOf } from './trace.js';

export type { Logger };

/** Keys whose values never reach a log line, whatever object they are nested in. */
const REDACT = [
  'secret', 'password', 'token', 'apiKey', 'authorization', 'clientSecret', 'material', 'value',
  '*.secret', '*.password', '*.token', '*.apiKey', '*.authorization', '*.clientSecret', '*.material',
  'headers.authorization', 'req.headers.authorization',
];

/**
 * Structured JSON logs. Every line carries the service and, inside a traced scope, the trace id,
 * tenant and session of the work in hand.
 */
export function createLogger(service: string, level: string): Logger {
  return pino({
    level,
    base: { service },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin() {
      const t = currentTrace();
      if (!t) return {};
      return { traceId: traceIdOf(t.traceparent), ...(t.tenantId ? { tenant: t.tenantId } : {}), ...(t.sessionId ? { sessionId: t.sessionId } : {}) };
    },
  });
}

/** Nest's logger, writing through pino. */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly pinoLogger: Logger) {}
  log(message: unknown, context?: string) { this.pinoLogger.info({ context }, String(message)); }
  error(message: unknown, trace?: string, context?: string) { this.pinoLogger.error({ context, trace }, String(message)); }
  warn(message: unknown, context?: string) { this.pinoLogger.warn({ context }, String(message)); }
  debug(message: unknown, context?: string) { this.pinoLogger.debug({ context }, String(message)); }
  verbose(message: unknown, context?: string) { this.pinoLogger.trace({ context }, String(message)); }
}

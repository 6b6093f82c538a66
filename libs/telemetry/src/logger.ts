import type { LoggerService } from '@nestjs/common';
import { pino, type DestinationStream, type Logger } from 'pino';
import { currentTrace, traceIdOf } from './trace.js';

export type { Logger };

/** Field names whose values never reach a log line, at the top level or nested up to two objects deep. */
const SECRET_KEYS = [
  'secret', 'password', 'passphrase', 'token', 'accessToken', 'access_token', 'refreshToken', 'refresh_token', 'idToken',
  'apiKey', 'api_key', 'authorization', 'cookie', 'clientSecret', 'client_secret', 'privateKey', 'private_key',
  'credentials', 'material',
];
/** Exported for the spec; pino compiles these into one redaction function at logger creation. */
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
  // a bare `value` at the top level is how KV and credential records are usually logged
  'value',
  'headers["x-api-key"]', 'req.headers["x-api-key"]', 'req.headers.authorization', 'req.headers.cookie',
];

/**
 * Structured JSON logs. Every line carries the service and, inside a traced scope, the trace id,
 * tenant and session of the work in hand. `destination` defaults to stdout (tests pass a stream).
 */
export function createLogger(service: string, level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin() {
      const t = currentTrace();
      if (!t) return {};
      const sessionId = t.sessionId;
      return { traceId: traceIdOf(t.traceparent), ...(t.tenantId ? { tenant: t.tenantId } : {}), ...(sessionId ? { sessionId } : {}) };
    },
  };
  return destination ? pino(options, destination) : pino(options);
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

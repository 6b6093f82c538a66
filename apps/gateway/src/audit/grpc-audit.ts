import type { handleUnaryCall, sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from '#libs/telemetry';
import type { Authorizer } from '../http/auth.js';
import type { AuditLog } from './audit.service.js';
import { AUDITED_GRPC_PATHS, grpcAuditFacts } from './audited-operations.js';

/**
 * Wraps the gRPC methods whose success is security-relevant (audited-operations.ts) so that they
 * record an audit entry before answering, as REST does through AuditInterceptor. The actor is the
 * call's key (identified again from its metadata, without counting a request against the rate
 * limit). Other methods, and failed calls, are untouched.
 */
export function auditGrpcCalls(
  audit: AuditLog, auth: Authorizer, logger: Logger, services: Record<string, UntypedServiceImplementation>,
): Record<string, UntypedServiceImplementation> {
  const out: Record<string, UntypedServiceImplementation> = {};
  for (const [service, impl] of Object.entries(services)) {
    const wrapped: UntypedServiceImplementation = { ...impl };
    for (const [method, handler] of Object.entries(impl)) {
      const path = `/${service}/${method}`;
      if (!AUDITED_GRPC_PATHS.has(path)) continue;
      const inner = handler as handleUnaryCall<unknown, unknown>;
      wrapped[method] = ((call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        inner(call, (err, value, trailer, flags) => {
          if (err) { callback(err, value, trailer, flags); return; }
          void (async () => {
            try {
              const facts = grpcAuditFacts(path, call.request, value);
              if (!facts) return;
              const authorization = call.metadata.get('authorization')[0];
              const actor = await auth.identify(typeof authorization === 'string' ? authorization : undefined);
              await audit.record({ ...facts, actor });
            } catch (e) {
              logger.error({ err: e, method: path }, 'could not audit a gRPC call');
            }
          })().finally(() => callback(null, value, trailer, flags));
        });
      }) as handleUnaryCall<unknown, unknown>;
    }
    out[service] = wrapped;
  }
  return out;
}

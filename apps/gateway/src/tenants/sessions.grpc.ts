import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { enumFromRest, toPbTimestamp, type PbGetSessionRequest, type PbGetSessionResponse, type PbSession } from '#libs/sdk';
import { required, unary, type CallContext, type CallDeps } from '../grpc/call.js';
import type { SessionsService, SessionView } from './sessions.service.js';

/** The REST session view → Session (null summaries stay unset). */
export function sessionToPb(s: SessionView): PbSession {
  return {
    session_id: s.sessionId, tenant_id: s.tenantId,
    created_at: toPbTimestamp(s.createdAt), updated_at: toPbTimestamp(s.updatedAt), expires_at: toPbTimestamp(s.expiresAt),
    runs: s.runs.map((r) => ({
      run_id: r.runId, agent: r.agent, agent_version: r.agentVersion, status: enumFromRest('RUN_STATUS', r.status),
      input: r.input, output: r.output, error: r.error ? { code: r.error.code, message: r.error.message } : null,
      created_at: toPbTimestamp(r.createdAt), ended_at: r.endedAt ? toPbTimestamp(r.endedAt) : null,
    })),
  };
}

/** `agentmesh.v1.Sessions`: REST's twin (SessionsService), same operation id and errors. */
export function sessionsService(sessions: SessionsService, deps: CallDeps, method: (name: string) => string): UntypedServiceImplementation {
  return {
    GetSession: unary(method('GetSession'), deps, async (req: PbGetSessionRequest, ctx: CallContext): Promise<PbGetSessionResponse> => {
      await ctx.authorize('sessions.get', req.tenant, undefined);
      return { session: sessionToPb(await sessions.get(req.tenant!, required(req.session_id, 'session_id'))) };
    }),
  };
}

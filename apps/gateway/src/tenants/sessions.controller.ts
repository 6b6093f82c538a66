import { Controller, Get, Param } from '@nestjs/common';
import { Operation } from '../http/auth.js';
import { SessionsService } from './sessions.service.js';

/**
 * `GET /v1/tenants/{t}/sessions/{id}`: the runs of one conversation in the order they were
 * started: `{sessionId, tenantId, createdAt, updatedAt, expiresAt, runs: [{runId, agent,
 * agentVersion, status, input, output, error, createdAt, endedAt}]}` (input and output are compact
 * JSON summaries). 404 once the session expired (AGENTMESH_SESSION_TTL after its last run).
 */
@Controller('v1/tenants/:t/sessions')
export class SessionsController {
  constructor(private readonly sessions: SessionsService) {}

  @Get(':id')
  @Operation('sessions.get')
  get(@Param('t') t: string, @Param('id') id: string) {
    return this.sessions.get(t, id);
  }
}

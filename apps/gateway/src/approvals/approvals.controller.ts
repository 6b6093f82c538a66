import { Body, Controller, Get, Param, Post, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { decideApprovalBodySchema, SchemaValidator } from '#libs/contracts';
import type { Principal } from '#libs/policy';
import { CurrentPrincipal, Operation } from '../http/auth.js';
import { approvalStatusParam, ApprovalsService, type DecideApprovalBody } from './approvals.service.js';

const v = new SchemaValidator();

/**
 * `GET /v1/tenants/{t}/approvals?status=pending|approved|denied|expired` (default pending):
 * `{approvals: [{id, runId, step, tool, version, args, argsHash, riskTier, status, createdAt,
 * expiresAt, decidedAt, decidedBy, reason}]}`, oldest first.
 * `POST /v1/tenants/{t}/approvals/{id}` `{decision: "approve"|"deny", reason?}`: roles approver
 * and owner; 200 with the approval once the decision is in the run's journal, 409 after expiry or
 * on an approval already decided, 404 for an unknown id, 202 (still pending) when the
 * orchestrator did not confirm within 10 s.
 */
@Controller('v1/tenants/:t/approvals')
export class ApprovalsController {
  constructor(private readonly approvals: ApprovalsService) {}

  @Get()
  @Operation('approvals.list')
  async list(@Param('t') t: string, @Query('status') status: unknown) {
    return { approvals: await this.approvals.list(t, approvalStatusParam(status)) };
  }

  @Post(':id')
  @Operation('approvals.decide')
  async decide(
    @Param('t') t: string, @Param('id') id: string, @Body() body: unknown,
    @CurrentPrincipal() principal: Principal, @Res({ passthrough: true }) res: Response,
  ) {
    const b = v.assert<DecideApprovalBody>('decide-approval', decideApprovalBodySchema, body);
    const { approval, recorded } = await this.approvals.decide(principal, t, id, b);
    res.status(recorded ? 200 : 202);
    return approval;
  }
}

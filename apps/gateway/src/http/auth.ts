import {
  CanActivate, ExecutionContext, Injectable, SetMetadata, createParamDecorator, type OnModuleDestroy, type OnModuleInit,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AgentmeshError, isTenantId } from '#libs/contracts';
import { PolicyService, type OperationId, type Principal } from '#libs/policy';
import { TenantsService } from '../tenants/keys.service.js';

const OPERATION = 'agentmesh:operation';
/** The policy operation a route performs; the guard asks Casbin about it before the handler runs. */
export const Operation = (op: OperationId) => SetMetadata(OPERATION, op);

export type AuthedRequest = Request & { principal?: Principal };
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext) => ctx.switchToHttp().getRequest<AuthedRequest>().principal);

/** Holds the Casbin policy service for the gateway. */
@Injectable()
export class Policy implements OnModuleInit, OnModuleDestroy {
  service!: PolicyService;
  async onModuleInit() { this.service = await PolicyService.create(); }
  onModuleDestroy() { this.service.close(); }
}

/**
 * Authenticates the bearer key (401) and asks the policy whether the principal may perform the
 * route's operation on the route's tenant (403). A key of another tenant is refused before any
 * lookup, so no data of tenant B is ever read on behalf of tenant A.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(private readonly reflector: Reflector, private readonly tenants: TenantsService, private readonly policy: Policy) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const op = this.reflector.get<OperationId | undefined>(OPERATION, ctx.getHandler());
    if (!op) return true; // health, metrics
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new AgentmeshError('unauthenticated', 'an API key is required: Authorization: Bearer <key>');
    const principal = await this.tenants.authenticate(m[1]);
    if (!principal) throw new AgentmeshError('unauthenticated', 'the API key is not valid or was revoked');
    req.principal = principal;
    const tenant = (req.params as Record<string, string | undefined>).t;
    if (tenant !== undefined && !isTenantId(tenant)) throw new AgentmeshError('not_found', 'no such tenant');
    const attrs = attributesFor(op, req);
    let decision = await this.policy.service.can({ principal, tenant, operation: op, attrs });
    if (!decision.allowed && decision.reason === 'missing_attribute' && op === 'tools.put') {
      // the body lacks a valid riskTier: check the role grant at the lowest tier, then let the
      // handler reject the body with 400 (a caller without the role still gets 403)
      decision = await this.policy.service.can({ principal, tenant, operation: op, attrs: { riskTier: 'read' } });
    }
    if (!decision.allowed) {
      throw new AgentmeshError('permission_denied', `not allowed: ${decision.explanation}`, { reason: decision.reason });
    }
    return true;
  }
}

function attributesFor(op: OperationId, req: Request): Record<string, string> {
  const body = (req.body ?? {}) as Record<string, unknown>;
  switch (op) {
    case 'runs.start':
      return { budgetState: 'ok' };
    case 'tools.put':
      return typeof body.riskTier === 'string' && ['read', 'write', 'irreversible'].includes(body.riskTier) ? { riskTier: body.riskTier } : {};
    default:
      return {};
  }
}

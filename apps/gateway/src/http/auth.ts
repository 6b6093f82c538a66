import {
  CanActivate, ExecutionContext, Inject, Injectable, SetMetadata, createParamDecorator, type OnModuleDestroy, type OnModuleInit,
} from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AgentmeshError, isTenantId } from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CONFIG, LOGGER, NATS } from '#libs/messaging';
import { PolicyService, type Decision, type OperationId, type Principal } from '#libs/policy';
import type { Logger } from '#libs/telemetry';
import { BudgetStates, type BudgetAdmission } from '../budgets/budget-states.js';
import { TenantsService } from '../tenants/keys.service.js';

const OPERATION = 'agentmesh:operation';
/** The policy operation a route performs; the guard asks Casbin about it before the handler runs. */
export const Operation = (op: OperationId) => SetMetadata(OPERATION, op);

export type AuthedRequest = Request & { principal?: Principal };
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext) => ctx.switchToHttp().getRequest<AuthedRequest>().principal);

/**
 * Authentication and authorization for every entry point (REST and gRPC): a bearer key becomes a
 * principal (401 otherwise), and the Casbin policy decides the operation on the tenant (403). A
 * key of another tenant is refused before any lookup, so no data of tenant B is read for tenant A.
 */
@Injectable()
export class Authorizer implements OnModuleInit, OnModuleDestroy {
  private policy!: PolicyService;
  private readonly budgets: BudgetStates;
  constructor(
    private readonly tenants: TenantsService,
    @Inject(NATS) nc: NatsConnection,
    @Inject(CONFIG) config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.budgets = BudgetStates.for(nc, config.budgetStateCacheMs, logger);
  }

  async onModuleInit() { this.policy = await PolicyService.create(); }
  onModuleDestroy() { this.policy.close(); }

  /** `authorization` header or metadata value → principal, or 401. */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) throw new AgentmeshError('unauthenticated', 'an API key is required: Authorization: Bearer <key>');
    const principal = await this.tenants.authenticate(m[1]);
    if (!principal) throw new AgentmeshError('unauthenticated', 'the API key is not valid or was revoked');
    return principal;
  }

  /** Allows the operation or throws 403 (404 for a malformed tenant id). */
  async authorize(principal: Principal, tenant: string | undefined, op: OperationId, body: unknown): Promise<void> {
    if (tenant !== undefined && !isTenantId(tenant)) throw new AgentmeshError('not_found', 'no such tenant');
    // runs.start is decided on the tenant's budget state, asked of the cost-governor (cached briefly)
    const own = tenant !== undefined && 'tenant' in principal && principal.tenant === tenant;
    const budget = op === 'runs.start' && own ? await this.budgets.admission(tenant) : undefined;
    let decision = await this.policy.can({ principal, tenant, operation: op, attrs: attributesFor(op, body, budget) });
    if (!decision.allowed && decision.reason === 'missing_attribute' && op === 'tools.put') {
      // the body lacks a valid riskTier: check the role grant at the lowest tier, then let the
      // handler reject the body with 400 (a caller without the role still gets 403)
      decision = await this.policy.can({ principal, tenant, operation: op, attrs: { riskTier: 'read' } });
    }
    if (!decision.allowed && budget && deniedForBudget(decision)) {
      // the budget alone refused? then it is the tenant circuit breaker: 429 RESOURCE_EXHAUSTED
      // with a clear reason; a caller whose role does not allow it at all still gets 403
      const withoutBudget = await this.policy.can({ principal, tenant, operation: op, attrs: attributesFor(op, body, { ...budget, state: 'ok' }) });
      if (!withoutBudget.allowed) throw new AgentmeshError('permission_denied', `not allowed: ${withoutBudget.explanation}`, { reason: withoutBudget.reason });
      throw new AgentmeshError('resource_exhausted', `the tenant's budget for this period is exhausted: new runs are refused until the budget is raised (PUT /v1/tenants/${tenant}/budget) or the period ends`, {
        reason: 'budget_exceeded', retryAfterSeconds: budget.retryAfterSeconds,
      });
    }
    if (!decision.allowed) {
      throw new AgentmeshError('permission_denied', `not allowed: ${decision.explanation}`, { reason: decision.reason });
    }
  }
}

/** A deny rule on the budget state refused the request. */
function deniedForBudget(d: Decision): boolean {
  return d.reason === 'denied_by_rule' && (d.rule?.when ?? '').includes('budgetState');
}

/** The attributes Casbin decides an operation on, from the request. */
function attributesFor(op: OperationId, body: unknown, budget?: BudgetAdmission): Record<string, string> {
  const b = (body ?? {}) as Record<string, unknown>;
  switch (op) {
    case 'runs.start':
      return { budgetState: budget?.state ?? 'ok' };
    case 'tools.put':
      return typeof b.riskTier === 'string' && ['read', 'write', 'irreversible'].includes(b.riskTier) ? { riskTier: b.riskTier } : {};
    default:
      return {};
  }
}

/** The REST guard: routes declare their operation with @Operation. */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(private readonly reflector: Reflector, private readonly auth: Authorizer) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const op = this.reflector.get<OperationId | undefined>(OPERATION, ctx.getHandler());
    if (!op) return true; // health, readiness, metrics
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    req.principal = await this.auth.authenticate(req.headers.authorization);
    await this.auth.authorize(req.principal, (req.params as Record<string, string | undefined>).t, op, req.body);
    return true;
  }
}

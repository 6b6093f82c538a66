import {
  CanActivate, ExecutionContext, Inject, Injectable, SetMetadata, createParamDecorator, type OnModuleDestroy, type OnModuleInit,
} from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AgentmeshError, isTenantId } from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CONFIG, LOGGER, NATS } from '#libs/messaging';
import type { Decision, OperationId, PolicyService, Principal } from '#libs/policy';
import type { Logger } from '#libs/telemetry';
import { BudgetStates, type BudgetAdmission } from '../budgets/budget-states.js';
import { limitMetrics } from '../limits/metrics.js';
import { TenantRateLimiter } from '../limits/rate-limiter.js';
import { GatewayPolicy } from '../policy/gateway-policy.js';
import { TenantsService } from '../tenants/keys.service.js';

const OPERATION = 'agentmesh:operation';
/** The policy operation a route performs; the guard asks Casbin about it before the handler runs. */
export const Operation = (op: OperationId) => SetMetadata(OPERATION, op);
/** The operation a route handler declared with @Operation (undefined for health, readiness, metrics). */
export const operationOf = (reflector: Reflector, handler: Parameters<Reflector['get']>[1]): OperationId | undefined =>
  reflector.get<OperationId | undefined>(OPERATION, handler);

export type AuthedRequest = Request & { principal?: Principal };
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext) => ctx.switchToHttp().getRequest<AuthedRequest>().principal);

/**
 * Authentication and authorization for every entry point (REST and gRPC): a bearer key becomes a
 * principal (401 otherwise), the tenant's request rate is limited (429 / RESOURCE_EXHAUSTED with
 * `Retry-After`), and the Casbin policy (GatewayPolicy: tenant rules in KV, kept current on every
 * instance) decides the operation on the tenant (403). A key of another tenant is refused before
 * any lookup, so no data of tenant B is read for tenant A.
 */
@Injectable()
export class Authorizer implements OnModuleInit, OnModuleDestroy {
  private readonly budgets: BudgetStates;
  private readonly limiter: TenantRateLimiter;
  constructor(
    private readonly tenants: TenantsService,
    private readonly gatewayPolicy: GatewayPolicy,
    @Inject(NATS) nc: NatsConnection,
    @Inject(CONFIG) config: AppConfig,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.budgets = BudgetStates.for(nc, config.budgetStateCacheMs, logger);
    this.limiter = new TenantRateLimiter(config.tenantRateLimit);
  }

  /** GatewayPolicy loads the policy (and closes it); nothing to do here any more. */
  async onModuleInit() {}
  onModuleDestroy() {}

  private get policy(): PolicyService {
    return this.gatewayPolicy.service;
  }

  /**
   * `authorization` header or metadata value → principal, or 401. Each call is one request of the
   * key's tenant: it takes a token of the tenant's rate limit, or fails with 429 `rate_limited`
   * and the seconds until the next token (`Retry-After`). The platform admin is not limited.
   */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    const principal = await this.identify(authorization);
    if ('tenant' in principal) {
      const d = this.limiter.take(principal.tenant);
      if (!d.ok) {
        limitMetrics.refusals.inc({ tenant: principal.tenant, reason: 'rate_limited' });
        throw new AgentmeshError('rate_limited', `the tenant's request rate limit is exhausted; retry after ${Math.max(1, Math.ceil(d.retryAfterSeconds))} s`, {
          reason: 'rate_limited', retryAfterSeconds: d.retryAfterSeconds,
        });
      }
    }
    return principal;
  }

  /** `authorization` → principal, or 401, without counting a request (for work after the call, such as auditing it). */
  async identify(authorization: string | undefined): Promise<Principal> {
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
    case 'approvals.decide':
      // the tier is the approval's own, known once it is loaded: the route guard checks the role
      // grant at the lowest tier, then ApprovalsService decides again with { riskTier } of the
      // approval (a decision body carries no riskTier: the schema refuses one)
      return { riskTier: typeof b.riskTier === 'string' && ['read', 'write', 'irreversible'].includes(b.riskTier) ? b.riskTier : 'read' };
    default:
      return {};
  }
}

/** The REST guard: routes declare their operation with @Operation. */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(private readonly reflector: Reflector, private readonly auth: Authorizer) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const op = operationOf(this.reflector, ctx.getHandler());
    if (!op) return true; // health, readiness, metrics
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    req.principal = await this.auth.authenticate(req.headers.authorization);
    await this.auth.authorize(req.principal, (req.params as Record<string, string | undefined>).t, op, req.body);
    return true;
  }
}

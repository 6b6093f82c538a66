import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Response } from 'express';
import { mergeMap, type Observable } from 'rxjs';
import { operationOf, type AuthedRequest } from '../http/auth.js';
import { AuditLog } from './audit.service.js';
import { restAuditFacts } from './audited-operations.js';

/**
 * Records the security-relevant REST operations (audited-operations.ts) in the audit trail once
 * they have succeeded, before the response leaves: keys issued and revoked, tools registered,
 * enabled and disabled, agents registered, budgets set, credentials stored and revoked, tenants
 * created. Failed requests are not recorded (nothing changed). Every other route passes through.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  constructor(private readonly reflector: Reflector, private readonly audit: AuditLog) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (ctx.getType() !== 'http') return next.handle();
    const op = operationOf(this.reflector, ctx.getHandler());
    if (!op) return next.handle();
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const res = ctx.switchToHttp().getResponse<Response>();
    return next.handle().pipe(mergeMap(async (result: unknown) => {
      const facts = restAuditFacts(op, {
        method: req.method, params: req.params as Record<string, string | undefined>, body: req.body, status: res.statusCode, result,
      });
      if (facts && req.principal) await this.audit.record({ ...facts, actor: req.principal });
      return result;
    }));
  }
}

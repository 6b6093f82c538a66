import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import express from 'express';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { ServiceDefinition } from '#libs/messaging';
import { StoreModule } from '#libs/store';
import { AgentsController } from './agents/agents.controller.js';
import { AgentsService } from './agents/agents.service.js';
import { ApprovalsController } from './approvals/approvals.controller.js';
import { ApprovalsService } from './approvals/approvals.service.js';
import { AuditController } from './audit/audit.controller.js';
import { AuditInterceptor } from './audit/audit.interceptor.js';
import { AuditSearch } from './audit/audit-search.service.js';
import { AuditLog } from './audit/audit.service.js';
import { BudgetsController } from './budgets/budgets.controller.js';
import { CredentialsController } from './credentials/credentials.controller.js';
import { GrpcGateway } from './grpc/grpc.server.js';
import { AuthGuard, Authorizer } from './http/auth.js';
import { httpMetrics } from './http/metrics.js';
import { ActiveRuns } from '#libs/limits';
import { AdmittingRunsService } from './limits/admitting-runs.service.js';
import { GatewayPolicy } from './policy/gateway-policy.js';
import { PolicyController } from './policy/policy.controller.js';
import { bodyErrorHandler, ProblemFilter, requireJson } from './http/problem.js';
import { traceContext } from './http/trace.js';
import { RunsController } from './runs/runs.controller.js';
import { RunsService } from './runs/runs.service.js';
import { TenantsService } from './tenants/keys.service.js';
import { SessionsController } from './tenants/sessions.controller.js';
import { SessionsService } from './tenants/sessions.service.js';
import { TenantsController } from './tenants/tenants.controller.js';
import { ToolsController } from './tools/tools.controller.js';

export const gateway: ServiceDefinition = {
  service: 'gateway',
  module: {
    // documents and read models (tenants, keys, agents, run index, audit search): MongoDB when MONGODB_URI is set, KV otherwise
    imports: [StoreModule.forRoot()],
    controllers: [
      TenantsController, AgentsController, ToolsController, RunsController, BudgetsController, ApprovalsController, CredentialsController,
      PolicyController, AuditController, SessionsController,
    ],
    providers: [
      TenantsService, AgentsService, { provide: RunsService, useClass: AdmittingRunsService }, ApprovalsService, Authorizer,
      { provide: APP_GUARD, useClass: AuthGuard }, GrpcGateway,
      // multi-tenancy: policy in KV with a change watcher, audit trail, run cap and sessions
      GatewayPolicy, AuditLog, AuditSearch, ActiveRuns, SessionsService, { provide: APP_INTERCEPTOR, useClass: AuditInterceptor },
    ],
  },
  async configure(app, { config, logger }) {
    const x = app as NestExpressApplication;
    x.disable('x-powered-by');
    x.set('trust proxy', false);
    x.use(traceContext(logger));
    x.use(httpMetrics);
    x.use(requireJson);
    x.use(express.json({ limit: config.maxBodyBytes, type: ['application/json', 'application/*+json'] }));
    x.use(bodyErrorHandler(config.maxBodyBytes));
    x.useGlobalFilters(new ProblemFilter(logger));
    // gRPC API on config.grpcPort: same services and Authorizer; closes with the app (OnModuleDestroy)
    await app.get(GrpcGateway).listen();
  },
};

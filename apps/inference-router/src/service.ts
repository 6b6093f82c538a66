import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import express, { type Express } from 'express';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { ServiceDefinition } from '#libs/messaging';
import { Readiness } from '#libs/telemetry';
import { AdminController } from './admin.controller.js';
import { ChatController, ChatHandler } from './chat.controller.js';
import { bodyErrorHandler } from './http-errors.js';
import { InferenceService } from './inference.service.js';
import { InferenceRpcController } from './rpc.controller.js';

/**
 * The inference-router: an internal OpenAI-compatible endpoint (`POST /v1/chat/completions`,
 * `GET /v1/models`, service token), the `inference.chat` / `inference.release` RPCs for the
 * orchestrator, and `/admin/replicas`. Sessions stick to replicas (consistent hashing with bounded
 * loads, pins in JetStream KV, TTL renewed every turn), new sessions wait briefly then get 429
 * when every replica is full, failed replicas' sessions move, easy steps go to the cheap model,
 * and every call's tokens and cost are reported to the cost-governor. Without AGENTMESH_REPLICAS
 * it routes to replica simulators it starts itself.
 */
const CHAT_PATH = '/v1/chat/completions';

export const inferenceRouter: ServiceDefinition = {
  service: 'inference-router',
  module: {
    controllers: [ChatController, AdminController, InferenceRpcController],
    providers: [InferenceService, ChatHandler],
  },
  configure(app, { config }) {
    const x = app as NestExpressApplication;
    x.disable('x-powered-by');
    x.set('etag', false);
    const limit = config.inference?.maxBodyBytes ?? 8 * 1024 * 1024;
    // the hot path: answered from the HTTP server's request event ahead of express; everything
    // else (admin, models, health, metrics) goes on to express and Nest
    const chat = app.get(ChatHandler);
    const server = app.getHttpServer() as Server;
    const [expressApp] = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
    if (expressApp !== undefined) {
      server.removeAllListeners('request');
      server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        if (req.method === 'POST' && (req.url === CHAT_PATH || req.url?.startsWith(`${CHAT_PATH}?`))) void chat.handle(req, res, limit);
        else expressApp(req, res);
      });
    } else {
      (x.getHttpAdapter().getInstance() as Express).post(CHAT_PATH, (req, res) => void chat.handle(req, res, limit));
    }
    // JSON bodies for the admin API only (startService turns Nest's parser off)
    x.use('/admin', express.json({ limit: 1024 * 1024, type: ['application/json', 'application/*+json'] }));
    x.use(bodyErrorHandler(1024 * 1024));
    const svc = app.get(InferenceService);
    app.get(Readiness).register('inference', () => svc.isReady);
  },
};

import 'reflect-metadata';
import { Global, Module, type DynamicModule, type INestApplication, type ModuleMetadata } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NatsConnection } from '@nats-io/transport-node';
import { loadConfig, type AppConfig, type ServiceName } from '#libs/config';
import { createLogger, initMetrics, PinoNestLogger, Readiness, TelemetryModule, type Logger } from '#libs/telemetry';
import { connectNats } from './connection.js';
import { provision } from './provision.js';
import { commandHandlersOf, JetStreamServer } from './server.js';

/** Injection tokens for what every service has. */
export const NATS = Symbol('NATS_CONNECTION');
export const CONFIG = Symbol('APP_CONFIG');
export const LOGGER = Symbol('LOGGER');

@Global()
@Module({})
class CoreModule {
  static forRoot(config: AppConfig, nc: NatsConnection, logger: Logger): DynamicModule {
    return {
      module: CoreModule,
      providers: [{ provide: CONFIG, useValue: config }, { provide: NATS, useValue: nc }, { provide: LOGGER, useValue: logger }],
      exports: [CONFIG, NATS, LOGGER],
    };
  }
}

export interface ServiceDefinition {
  service: ServiceName;
  /** The service's own module metadata (controllers, providers, imports). */
  module: ModuleMetadata;
  /** Durable work consumers this service reads, if any. */
  consumers?: ReadonlyArray<{ stream: string; durable: string }>;
  /** Extra wiring after the app is created and before it listens (e.g. the gateway's gRPC server). */
  configure?: (app: INestApplication, ctx: { config: AppConfig; nc: NatsConnection; logger: Logger }) => void | Promise<void>;
  env?: Record<string, string | undefined>;
}

export interface RunningService {
  app: INestApplication;
  config: AppConfig;
  nc: NatsConnection;
  logger: Logger;
  url: string;
  close(): Promise<void>;
}

/**
 * Starts one service: validated config, logs and metrics, the NATS connection, provisioned
 * streams, the Nest app with the JetStream transport, HTTP for health/metrics (and REST on the
 * gateway). Resolves once it takes traffic.
 */
export async function startService(def: ServiceDefinition): Promise<RunningService> {
  const config = loadConfig(def.service, def.env);
  const logger = createLogger(config.service, config.logLevel);
  initMetrics(config.service);
  const nc = await connectNats(config.natsUrl, config.service);
  await provision(nc, { replicas: config.streamReplicas, ackWaitMs: config.ackWaitMs, sessionTtlMs: config.sessionTtlMs });

  @Module({ ...def.module, imports: [CoreModule.forRoot(config, nc, logger), TelemetryModule.forRoot(), ...(def.module.imports ?? [])] })
  class ServiceModule {}

  const app = await NestFactory.create(ServiceModule, { logger: new PinoNestLogger(logger), bodyParser: false });
  app.get(Readiness).register('nats', () => !nc.isClosed());
  const server = new JetStreamServer({ nc, service: config.service, logger, consumers: def.consumers ?? [] });
  server.useCommandHandlers(commandHandlersOf((def.module.controllers ?? []).map((c) => app.get(c))));
  app.connectMicroservice({ strategy: server });
  await def.configure?.(app, { config, nc, logger });
  await app.startAllMicroservices();
  await app.listen(config.httpPort, config.host);
  const addr = app.getHttpServer().address() as { port: number };
  const url = `http://${config.host}:${addr.port}`;
  logger.info({ url }, `${config.service} ready`);
  let closed = false;
  return {
    app, config, nc, logger, url,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await nc.drain().catch(() => undefined);
    },
  };
}

/** Runs a service as a process: start, then stop cleanly on SIGINT/SIGTERM. */
export async function runServiceMain(def: ServiceDefinition): Promise<void> {
  let svc: RunningService;
  try {
    svc = await startService(def);
  } catch (e) {
    process.stderr.write(`${def.service} failed to start: ${(e as Error).message}\n`);
    process.exit(1);
  }
  const stop = async (signal: string) => {
    svc.logger.info({ signal }, `${def.service} stopping`);
    await svc.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Global, Inject, Injectable, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NatsConnection } from '@nats-io/transport-node';
import { loadConfig, type AppConfig } from '#libs/config';
import { CONFIG, connectNats, LOGGER, NATS, provision } from '#libs/messaging';
import { createLogger } from '#libs/telemetry';
import { startNatsServer, type NatsServerHandle } from '#libs/testing';
import type { Repositories } from './repositories.js';
import { STORE, StoreModule } from './store.module.js';
import { jongodbBinary, startJongodb } from './test/jongodb.js';

/** What startService provides globally (libs/messaging CoreModule). */
@Global()
@Module({})
class Core {
  static with(config: AppConfig, nc: NatsConnection): DynamicModule {
    return {
      module: Core,
      providers: [{ provide: CONFIG, useValue: config }, { provide: NATS, useValue: nc }, { provide: LOGGER, useValue: createLogger('gateway', 'silent') }],
      exports: [CONFIG, NATS, LOGGER],
    };
  }
}

@Injectable()
class UsesStore {
  constructor(@Inject(STORE) readonly store: Repositories) {}
}

async function appWith(config: AppConfig, nc: NatsConnection) {
  @Module({ imports: [Core.with(config, nc), StoreModule.forRoot()], providers: [UsesStore] })
  class App {}
  return NestFactory.createApplicationContext(App, { logger: false });
}

describe('StoreModule (the STORE provider of a service)', () => {
  let srv: NatsServerHandle;
  let nc: NatsConnection;
  beforeAll(async () => {
    srv = await startNatsServer();
    nc = await connectNats(srv.url, 'store-module');
    await provision(nc, { replicas: 1, ackWaitMs: 5000 });
  });
  afterAll(async () => { await nc?.close(); await srv?.stop(); });

  it('injects the JetStream KV repositories when MONGODB_URI is not set, and leaves the NATS connection open on close', async () => {
    const app = await appWith(loadConfig('gateway', { MONGODB_URI: undefined }), nc);
    const { store } = app.get(UsesStore);
    expect(store.backend).toBe('kv');
    expect(await store.tenants.create({ id: 'acme', name: 'Acme', createdAt: new Date().toISOString() })).toBe(true);
    await app.close();
    expect(nc.isClosed()).toBe(false);
  });

  const jongodb = jongodbBinary();
  (('bin' in jongodb) ? it : it.skip)(`injects the MongoDB repositories when MONGODB_URI is set and closes the connection with the app${'missing' in jongodb ? ` (skipped: ${jongodb.missing})` : ''}`, async () => {
    const mongo = await startJongodb();
    try {
      const app = await appWith(loadConfig('gateway', { MONGODB_URI: `${mongo.uri}/agentmesh`, MONGODB_SERVER_SELECTION_TIMEOUT: '1s' }), nc);
      const { store } = app.get(UsesStore);
      expect(store.backend).toBe('mongo');
      expect(await store.tenants.create({ id: 'acme', name: 'Acme', createdAt: new Date().toISOString() })).toBe(true);
      expect(await store.tenants.get('acme')).toMatchObject({ id: 'acme', name: 'Acme' });
      await app.close();
      await expect(store.tenants.get('acme')).rejects.toBeDefined();
    } finally {
      await mongo.stop();
    }
  });
});

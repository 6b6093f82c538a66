import { Global, Inject, Injectable, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { CONFIG, LOGGER, NATS } from '#libs/messaging';
import type { AppConfig } from '#libs/config';
import type { Logger } from '#libs/telemetry';
import { createRepositories } from './create-repositories.js';
import type { Repositories } from './repositories.js';

/**
 * Injection token of the service's `Repositories` (libs/store): MongoDB when MONGODB_URI is set,
 * JetStream KV on the service's NATS connection otherwise. Provided by `StoreModule.forRoot()`:
 *
 * ```ts
 * constructor(@Inject(STORE) private readonly store: Repositories) {}
 * ```
 */
export const STORE = Symbol('STORE');

/** Closes the repositories (the MongoDB connection) when the app closes, after every OnModuleDestroy. */
@Injectable()
class StoreLifecycle implements OnApplicationShutdown {
  constructor(@Inject(STORE) private readonly repos: Repositories, @Inject(LOGGER) private readonly logger: Logger) {}
  async onApplicationShutdown(): Promise<void> {
    await this.repos.close().catch((err: unknown) => this.logger.warn({ err }, 'closing the store failed'));
  }
}

/**
 * The store for a service started by `startService` (libs/messaging), which provides CONFIG, NATS
 * and LOGGER globally. Import it in the service's module: `imports: [StoreModule.forRoot()]`.
 * Start-up fails (and the service exits) when the configured MongoDB cannot be reached.
 */
@Global()
@Module({})
export class StoreModule {
  static forRoot(): DynamicModule {
    return {
      module: StoreModule,
      providers: [
        {
          provide: STORE,
          inject: [CONFIG, NATS, LOGGER],
          useFactory: async (config: AppConfig, nc: NatsConnection, logger: Logger): Promise<Repositories> => {
            const repos = await createRepositories(config, nc);
            logger.info({ store: repos.backend }, `document store: ${repos.backend === 'mongo' ? 'MongoDB' : 'JetStream KV'}`);
            return repos;
          },
        },
        StoreLifecycle,
      ],
      exports: [STORE],
    };
  }
}

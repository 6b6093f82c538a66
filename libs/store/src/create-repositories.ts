import type { NatsConnection } from '@nats-io/transport-node';
import { createKvRepositories } from './kv/kv-repositories.js';
import { createMongoRepositories } from './mongo/mongo-repositories.js';
import type { Repositories, StoreConfig, StoreOptions } from './repositories.js';

/**
 * The configured store: MongoDB (mongoose) when MONGODB_URI is set, JetStream KV buckets on the
 * service's NATS connection otherwise. Pass the service's AppConfig.
 */
export async function createRepositories(config: StoreConfig, nc: NatsConnection, opts: StoreOptions & { dbName?: string } = {}): Promise<Repositories> {
  return config.mongodbUri ? createMongoRepositories(config.mongodbUri, config, opts) : createKvRepositories(nc, config, opts);
}

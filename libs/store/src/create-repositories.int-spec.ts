import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '#libs/messaging';
import { freePort, startNatsServer, type NatsServerHandle } from '#libs/testing';
import { createRepositories } from './create-repositories.js';
import { jongodbBinary, startJongodb } from './test/jongodb.js';

describe('createRepositories', () => {
  let srv: NatsServerHandle;
  let nc: NatsConnection;
  beforeAll(async () => {
    srv = await startNatsServer();
    nc = await connectNats(srv.url, 'store-select');
  });
  afterAll(async () => { await nc.close(); await srv.stop(); });

  it('uses JetStream KV when MONGODB_URI is not set', async () => {
    const repos = await createRepositories({ mongodbUri: undefined }, nc);
    expect(repos.backend).toBe('kv');
    await repos.close();
  });

  it('fails start-up fast with unavailable when MONGODB_URI names an unreachable server', async () => {
    const port = await freePort();
    const started = Date.now();
    await expect(createRepositories({ mongodbUri: `mongodb://127.0.0.1:${port}/x`, mongodbServerSelectionTimeoutMs: 500 }, nc))
      .rejects.toMatchObject({ code: 'unavailable', status: 503 });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  const jongodb = jongodbBinary();
  (('bin' in jongodb) ? it : it.skip)(`uses MongoDB when MONGODB_URI is set${'missing' in jongodb ? ` (skipped: ${jongodb.missing})` : ''}`, async () => {
    const mongo = await startJongodb();
    try {
      const repos = await createRepositories({ mongodbUri: `${mongo.uri}/agentmesh` }, nc);
      expect(repos.backend).toBe('mongo');
      await repos.close();
    } finally {
      await mongo.stop();
    }
  });
});

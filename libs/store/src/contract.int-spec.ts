import { describe, expect, it } from '@jest/globals';
import mongoose from 'mongoose';
import { ulid } from 'ulid';
import { BUCKETS } from '#libs/contracts';
import { loadConfig } from '#libs/config';
import { connectNats, decodeJson, openBucket, provision } from '#libs/messaging';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNatsServer } from '#libs/testing';
import { createKvRepositories, STORE_BUCKETS } from './kv/kv-repositories.js';
import { createMongoRepositories } from './mongo/mongo-repositories.js';
import { jongodbBinary, startJongodb } from './test/jongodb.js';
import { describeRepositoryContract, FakeClock, SESSION_TTL_MS, type ContractTarget } from './test/repository-contract.js';

const OUTAGE = 'fails fast with unavailable while the store is down and serves again once it is back';

/** A credential's KV entry as stored (null for no key or a delete marker). */
const rawKvCredential = (nc: NatsConnection) => async (tenantId: string, name: string): Promise<Record<string, unknown> | null> => {
  const e = await (await openBucket(nc, STORE_BUCKETS.credentials)).get(`${tenantId}.${name}`);
  return e && e.operation === 'PUT' && e.length > 0 ? decodeJson<Record<string, unknown>>(e.value) : null;
};

/** A session's KV entry in am_session_runs as stored. */
const rawKvSession = (nc: NatsConnection) => async (tenantId: string, sessionId: string): Promise<Record<string, unknown> | null> => {
  const e = await (await openBucket(nc, BUCKETS.sessionRuns)).get(`${tenantId}.${sessionId}`);
  return e && e.operation === 'PUT' && e.length > 0 ? decodeJson<Record<string, unknown>>(e.value) : null;
};

/** A session's MongoDB document in session_runs as stored. */
const rawMongoSession = (uri: string, dbName: string) => async (tenantId: string, sessionId: string): Promise<Record<string, unknown> | null> => {
  const conn = await mongoose.createConnection(uri, { dbName, serverSelectionTimeoutMS: 3000 }).asPromise();
  try {
    return await conn.collection('session_runs').findOne({ tenantId, sessionId });
  } finally {
    await conn.close();
  }
};

/** A credential's MongoDB document as stored, read with a connection of its own. */
const rawMongoCredential = (uri: string, dbName: string) => async (tenantId: string, name: string): Promise<Record<string, unknown> | null> => {
  const conn = await mongoose.createConnection(uri, { dbName, serverSelectionTimeoutMS: 3000 }).asPromise();
  try {
    return await conn.collection('credentials').findOne({ tenantId, name });
  } finally {
    await conn.close();
  }
};

/** A nats-server with the journal provisioned: the KV store itself, or the projector's source. */
async function nats() {
  const srv = await startNatsServer();
  const nc = await connectNats(srv.url, 'store-contract');
  await provision(nc, { replicas: 1, ackWaitMs: 30_000 });
  return { srv, nc };
}

describeRepositoryContract('JetStream KV', async (): Promise<ContractTarget> => {
  const { srv, nc } = await nats();
  const clock = new FakeClock();
  const repos = await createKvRepositories(nc, { mongodbUri: undefined, sessionTtlMs: SESSION_TTL_MS }, { now: clock.now });
  return {
    repos, nc, clock, rawCredential: rawKvCredential(nc), rawSession: rawKvSession(nc),
    outage: { down: () => srv.kill(), up: () => srv.restart() },
    close: async () => { await repos.close(); await nc.close(); await srv.stop(); },
  };
});

const mongodbUri = loadConfig('orchestrator').mongodbUri;
if (mongodbUri) {
  describeRepositoryContract('MongoDB at MONGODB_URI', async (): Promise<ContractTarget> => {
    const { srv, nc } = await nats();
    const clock = new FakeClock();
    const dbName = `agentmesh_contract_${ulid().toLowerCase()}`;
    const repos = await createMongoRepositories(mongodbUri, { mongodbUri, sessionTtlMs: SESSION_TTL_MS }, { now: clock.now, dbName });
    return {
      repos, nc, clock, rawCredential: rawMongoCredential(mongodbUri, dbName), rawSession: rawMongoSession(mongodbUri, dbName),
      close: async () => {
        await repos.close();
        const conn = await mongoose.createConnection(mongodbUri, { dbName, serverSelectionTimeoutMS: 5000 }).asPromise();
        await conn.dropDatabase().catch(() => undefined);
        await conn.close();
        await nc.close();
        await srv.stop();
      },
    };
  }, { skip: { [OUTAGE]: 'the test cannot stop the MongoDB at MONGODB_URI; the outage case runs on jongodb' } });
} else {
  describe('repository contract: MongoDB at MONGODB_URI', () => {
    const reason = 'MONGODB_URI not set: set it to a MongoDB (e.g. mongodb://127.0.0.1:27017) to run the contract against a real server';
    console.warn(`libs/store contract: MongoDB half skipped (${reason})`);
    it.skip(`runs the repository contract against MongoDB (${reason})`, () => undefined);
  });
}

const jongodb = jongodbBinary();
if ('bin' in jongodb) {
  describeRepositoryContract('MongoDB wire protocol (jongodb, in-memory)', async (): Promise<ContractTarget> => {
    const mongo = await startJongodb();
    const { srv, nc } = await nats();
    const clock = new FakeClock();
    const config = { mongodbUri: mongo.uri, sessionTtlMs: SESSION_TTL_MS, mongodbServerSelectionTimeoutMs: 1500 };
    const repos = await createMongoRepositories(mongo.uri, config, { now: clock.now, dbName: 'agentmesh_contract' });
    return {
      repos, nc, clock, rawCredential: rawMongoCredential(mongo.uri, 'agentmesh_contract'), rawSession: rawMongoSession(mongo.uri, 'agentmesh_contract'),
      outage: { down: () => mongo.kill(), up: () => mongo.restart() },
      close: async () => { await repos.close(); await mongo.stop(); await nc.close(); await srv.stop(); },
    };
  });
} else {
  describe('repository contract: MongoDB wire protocol (jongodb, in-memory)', () => {
    console.warn(`libs/store contract: jongodb half skipped (${jongodb.missing})`);
    it.skip(`runs the repository contract against jongodb (${jongodb.missing})`, () => undefined);
  });
}

describe('session histories on JetStream KV: what the gateway wrote before the repository, and bucket expiry', () => {
  it('reads a session document written without expiresAt (expiry = updatedAt + TTL), and the bucket max age removes sessions', async () => {
    const { srv, nc } = await nats();
    const ttlMs = 2000;
    try {
      const repos = await createKvRepositories(nc, { mongodbUri: undefined, sessionTtlMs: ttlMs });
      const kv = await openBucket(nc, BUCKETS.sessionRuns);
      const updatedAt = new Date().toISOString();
      const run = {
        runId: `run_${ulid()}`, agent: 'hello', agentVersion: '1', status: 'completed', input: '{"name":"Ada"}', output: '{"text":"Hello, Ada!"}',
        error: null, createdAt: updatedAt, endedAt: updatedAt,
      };
      const legacy = { sessionId: 'chat-1', tenantId: 'acme', runs: [run], createdAt: updatedAt, updatedAt };
      await kv.put('acme.chat-1', new TextEncoder().encode(JSON.stringify(legacy)));
      const got = await repos.forTenant('acme').sessions.get('chat-1');
      expect(got?.value).toEqual({ ...legacy, expiresAt: new Date(Date.parse(updatedAt) + ttlMs).toISOString() });
      // a later write keeps the layout (plus expiresAt) at the same key
      const w = await repos.forTenant('acme').sessions.put({ sessionId: 'chat-1', runs: got!.value.runs, createdAt: legacy.createdAt }, got!.revision);
      expect(w).not.toBeNull();
      expect(await rawKvSession(nc)('acme', 'chat-1')).toEqual(w!.value);
      // nats-server removes the entry once the bucket's max age (the TTL) has passed since the write
      const deadline = Date.now() + 8000;
      while ((await kv.get('acme.chat-1'))?.operation === 'PUT' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      expect((await kv.get('acme.chat-1'))?.operation ?? null).not.toBe('PUT');
      expect(await repos.forTenant('acme').sessions.get('chat-1')).toBeNull();
    } finally {
      await nc.close();
      await srv.stop();
    }
  }, 20_000);
});

import { describe, expect, it } from '@jest/globals';
import { AgentmeshError } from '#libs/contracts';
import { isUnreachable } from './mongo-repositories.js';
import { COLLECTIONS } from './schemas.js';

const indexesOf = (name: keyof typeof COLLECTIONS) =>
  COLLECTIONS[name].schema.indexes().map(([keys, options]) => ({ keys: Object.keys(keys), options: options as Record<string, unknown> }));

describe('the MongoDB schemas', () => {
  it('lead every index with the tenant id, except the sessions TTL index and the platform-wide checkpoints', () => {
    for (const name of Object.keys(COLLECTIONS) as Array<keyof typeof COLLECTIONS>) {
      if (name === 'checkpoints') continue;
      const idx = indexesOf(name);
      expect(idx.length).toBeGreaterThan(0);
      for (const i of idx) {
        if (i.options.expireAfterSeconds !== undefined) {
          expect({ name, keys: i.keys }).toEqual({ name: 'sessions', keys: ['expiresAt'] });
          continue;
        }
        expect({ name, first: i.keys[0] }).toEqual({ name, first: 'tenantId' });
      }
    }
    expect(indexesOf('checkpoints')).toEqual([]);
  });

  it('back idempotency and immutable versions with unique indexes', () => {
    const unique = (name: keyof typeof COLLECTIONS) => indexesOf(name).filter((i) => i.options.unique).map((i) => i.keys);
    expect(unique('tenants')).toEqual([['tenantId']]);
    expect(unique('agentVersions')).toEqual([['tenantId', 'name', 'version']]);
    expect(unique('toolVersions')).toEqual([['tenantId', 'name', 'version']]);
    expect(unique('runs')).toEqual([['tenantId', 'id']]);
    expect(unique('audit')).toEqual([['tenantId', 'id']]);
    expect(unique('usage')).toEqual([['tenantId', 'hour']]);
    expect(unique('apiKeys')).toEqual([['tenantId', 'id']]);
    expect(unique('credentials')).toEqual([['tenantId', 'name']]);
    expect(unique('sessions')).toEqual([['tenantId', 'sessionId']]);
  });

  it('keep session histories in session_runs and expire them with a TTL index on expiresAt', () => {
    expect(COLLECTIONS.sessions.collection).toBe('session_runs');
    expect(indexesOf('sessions')).toContainEqual({ keys: ['expiresAt'], options: expect.objectContaining({ expireAfterSeconds: 0 }) });
    expect(COLLECTIONS.sessions.schema.path('expiresAt').instance).toBe('Date');
  });

  it('keep credentials to encrypted fields and metadata (unknown fields are refused)', () => {
    const paths = Object.keys(COLLECTIONS.credentials.schema.paths).filter((p) => p !== '_id').sort();
    expect(paths).toEqual([
      'createdAt', 'metadata.allowedTools', 'metadata.description', 'metadata.kind', 'metadata.scopes', 'name', 'revokedAt',
      'secret.alg', 'secret.ciphertext', 'secret.dataKeyId', 'secret.nonce', 'secret.tag', 'secret.v', 'tenantId', 'updatedAt',
    ]);
    expect(COLLECTIONS.credentials.schema.get('strict')).toBe('throw');
  });
});

describe('recognising an unreachable MongoDB', () => {
  it('treats server selection, network and closed-pool errors as unreachable, and nothing else', () => {
    for (const name of ['MongoServerSelectionError', 'MongoNetworkError', 'MongoNotConnectedError', 'MongoPoolClearedError', 'MongoTopologyClosedError']) {
      const e = new Error('x');
      e.name = name;
      expect(isUnreachable(e)).toBe(true);
    }
    expect(isUnreachable(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).toBe(true);
    expect(isUnreachable(new Error('Cannot call `runs.find()` before initial connection is complete if `bufferCommands = false`'))).toBe(true);
    expect(isUnreachable(Object.assign(new Error('E11000 duplicate key'), { name: 'MongoServerError', code: 11000 }))).toBe(false);
    expect(isUnreachable(new AgentmeshError('conflict', 'x'))).toBe(false);
    expect(isUnreachable(null)).toBe(false);
  });
});

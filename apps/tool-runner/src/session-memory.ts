import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, type JsonValue } from '#libs/contracts';
import { NATS, openBucket } from '#libs/messaging';
import { KvDocuments } from '#libs/store';
import type { MemoryStore } from './builtins.js';

interface MemoryEntry { value: JsonValue; at: string }

/**
 * Per-session memory of the memory builtins: `<tenant>.<sessionId>.<key>` in the KV bucket
 * BUCKETS.sessionMemory. Entries expire with the bucket's max_age (the session TTL, set by
 * provision): nats-server 2.9 has no per-key TTL, so each entry lives that long after its last write.
 */
@Injectable()
export class SessionMemory implements MemoryStore, OnModuleInit {
  private docs!: KvDocuments<MemoryEntry>;

  constructor(@Inject(NATS) private readonly nc: NatsConnection) {}

  async onModuleInit(): Promise<void> {
    this.docs = new KvDocuments(await openBucket(this.nc, BUCKETS.sessionMemory));
  }

  async get(tenantId: string, sessionId: string, key: string): Promise<{ value: JsonValue } | null> {
    const e = await this.docs.get(tenantId, sessionId, key);
    return e ? { value: e.value } : null;
  }

  async put(tenantId: string, sessionId: string, key: string, value: JsonValue): Promise<void> {
    await this.docs.put(tenantId, [sessionId, key], { value, at: new Date().toISOString() });
  }
}

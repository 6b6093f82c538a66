import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, conflict, isTenantId, newUlid, notFound, type Role } from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CONFIG, LOGGER, NATS, openBucket } from '#libs/messaging';
import type { Principal } from '#libs/policy';
import { KvDocuments, STORE, type ApiKeyRecord, type Repositories, type TenantRecord as Tenant } from '#libs/store';
import type { Logger } from '#libs/telemetry';

/** A tenant and an API key record as the store keeps them (the key's hash never leaves the gateway). */
export type { TenantRecord as Tenant, ApiKeyRecord } from '#libs/store';

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * How long a key record read from MongoDB is trusted (the MongoDB backend has no KV watch): a
 * revocation through another gateway instance applies within this time; through this instance, at once.
 */
export const KEY_CACHE_TTL_MS = 5000;
const KEY = /^amk_([a-z0-9][a-z0-9-]{1,62})_([0-9A-HJKMNP-TV-Z]{26})_([A-Za-z0-9_-]{43})$/;

/**
 * Tenants and their API keys. A key reads `amk_<tenant>_<id>_<secret>`: the tenant and id find
 * the record, the hash of the whole key proves it. Revocation applies to the next request.
 */
@Injectable()
export class TenantsService implements OnModuleInit, OnModuleDestroy {
  private adminHash!: Buffer;
  /**
   * Key records by cache key (the KV key `<tenant>.<id>`). On the KV backend a watch of the
   * am_apikeys bucket evicts changed records, so a revocation anywhere applies at once and hits
   * live until then; on the MongoDB backend (no watch) a hit lives KEY_CACHE_TTL_MS.
   */
  private readonly keyCache = new Map<string, { rec: ApiKeyRecord; until: number }>();
  private stopWatch?: () => void;

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(STORE) private readonly store: Repositories,
  ) {}

  async onModuleInit(): Promise<void> {
    this.adminHash = sha256(this.adminKey());
    if (this.store.backend === 'kv') {
      // the same bucket and keys the KV repository writes (libs/store README: KV layouts)
      const keys = new KvDocuments<ApiKeyRecord>(await openBucket(this.nc, BUCKETS.apiKeys));
      this.stopWatch = await keys.watchChanges((key) => this.keyCache.delete(key));
    }
  }

  onModuleDestroy(): void {
    this.stopWatch?.();
  }

  /** The platform admin key: from AGENTMESH_ADMIN_KEY, else the data folder, else generated there (0600). */
  private adminKey(): string {
    if (this.config.adminKey) return this.config.adminKey;
    const file = join(this.config.dataDir, 'admin.key');
    if (existsSync(file)) return readFileSync(file, 'utf8').trim();
    mkdirSync(this.config.dataDir, { recursive: true });
    const key = `amk_admin_${randomBytes(32).toString('base64url')}`;
    writeFileSync(file, `${key}\n`, { mode: 0o600 });
    this.logger.info({ file }, 'generated the platform admin key');
    return key;
  }

  async authenticate(bearer: string): Promise<Principal | null> {
    const h = sha256(bearer);
    if (timingSafeEqual(h, this.adminHash)) return { platformAdmin: true };
    const m = KEY.exec(bearer);
    if (!m) return null;
    const cacheKey = `${m[1]}.${m[2]}`;
    const now = Date.now();
    let rec = null as ApiKeyRecord | null;
    const hit = this.keyCache.get(cacheKey);
    if (hit && hit.until > now) rec = hit.rec;
    else {
      // only hits are cached: a cached miss could outlive a concurrent issue of that key
      rec = await this.store.forTenant(m[1]).apiKeys.get(m[2]);
      if (rec) {
        if (this.keyCache.size > 50_000) this.keyCache.clear();
        this.keyCache.set(cacheKey, { rec, until: this.store.backend === 'kv' ? Infinity : now + KEY_CACHE_TTL_MS });
      } else this.keyCache.delete(cacheKey);
    }
    if (!rec || rec.revokedAt || !timingSafeEqual(Buffer.from(rec.hash, 'hex'), h)) return null;
    return { tenant: rec.tenantId, roles: rec.roles, subject: `key:${rec.id}` };
  }

  async createTenant(id: string, name?: string): Promise<Tenant> {
    const t: Tenant = { id, name: name ?? id, createdAt: new Date().toISOString() };
    if (!(await this.store.tenants.create(t))) throw conflict(`tenant ${id} already exists`, 'tenant_exists');
    return t;
  }

  async getTenant(id: string): Promise<Tenant | null> {
    return isTenantId(id) ? this.store.tenants.get(id) : null;
  }

  async issueKey(tenantId: string, roles: Role[], name?: string): Promise<{ record: ApiKeyRecord; key: string }> {
    if (!(await this.getTenant(tenantId))) throw notFound(`tenant ${tenantId}`);
    const id = newUlid();
    const key = `amk_${tenantId}_${id}_${randomBytes(32).toString('base64url')}`;
    const record: ApiKeyRecord = {
      id, tenantId, name: name ?? '', roles, hash: sha256(key).toString('hex'), createdAt: new Date().toISOString(), revokedAt: null,
    };
    const { tenantId: _t, ...stored } = record;
    if (!(await this.store.forTenant(tenantId).apiKeys.create(stored))) throw conflict(`api key ${id} already exists; retry`, 'key_exists');
    return { record, key };
  }

  /** A key's record (with its hash: never return that to a caller), or null. */
  async getKey(tenantId: string, id: string): Promise<ApiKeyRecord | null> {
    return isTenantId(tenantId) ? this.store.forTenant(tenantId).apiKeys.get(id) : null;
  }

  async revokeKey(tenantId: string, id: string): Promise<void> {
    const rec = isTenantId(tenantId) ? await this.store.forTenant(tenantId).apiKeys.revoke(id, new Date().toISOString()) : null;
    if (!rec) throw notFound(`api key ${id}`);
    this.keyCache.delete(`${tenantId}.${id}`);
  }
}

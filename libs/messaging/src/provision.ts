import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, DELEGATION_REPLAY_TTL_MS, CONSUMERS, OBJECT_STORES, RETIRED_CONSUMERS, SESSION_TTL_BUCKETS, STREAMS } from '#libs/contracts';

export interface ProvisionOptions {
  replicas: number;
  ackWaitMs: number;
  /**
   * Session TTL: max_age of the session buckets (SESSION_TTL_BUCKETS: session memory and session
   * run history; default 24 h). nats-server 2.9 has no
   * per-key TTL, so expiry is bucket-wide: each entry expires this long after its last write.
   */
  sessionTtlMs?: number;
}

export const DEFAULT_SESSION_TTL_MS = 24 * 3_600_000;

const NS = 1_000_000;

async function ensureStream(jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
    await jsm.streams.update(cfg.name, cfg);
  } catch (e) {
    if ((e as { name?: string }).name !== 'StreamNotFoundError') throw e;
    await jsm.streams.add(cfg);
  }
}

/**
 * Creates or updates the streams, work consumers and KV buckets. Idempotent; every service calls it
 * at start, so any one of them can come up first.
 */
export async function provision(nc: NatsConnection, opts: ProvisionOptions): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, {
    name: STREAMS.journal.name,
    subjects: [...STREAMS.journal.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: opts.replicas,
    duplicate_window: 120_000 * NS,
    max_msg_size: 1024 * 1024,
    allow_direct: true,
  });
  await ensureStream(jsm, {
    name: STREAMS.commands.name,
    subjects: [...STREAMS.commands.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Workqueue,
    num_replicas: opts.replicas,
    duplicate_window: 120_000 * NS,
    max_msg_size: 1024 * 1024,
  });
  // metered usage (`usage.<tenant>`): the cost-governor's stream, also written by the inference-router
  // (calls without a reservation). Created when missing, never updated here: the governor owns its config.
  try {
    await jsm.streams.info(STREAMS.usage.name);
  } catch (e) {
    if ((e as { name?: string }).name !== 'StreamNotFoundError') throw e;
    try {
      await jsm.streams.add({
        name: STREAMS.usage.name, subjects: [...STREAMS.usage.subjects], storage: StorageType.File, retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old, num_replicas: opts.replicas, duplicate_window: 120_000 * NS, max_msg_size: 64 * 1024,
      });
    } catch (err) {
      if (!/already in use/i.test((err as Error).message)) throw err;
    }
  }
  // durable timers (approval timeouts): a work queue whose consumer naks each timer until it is due
  await ensureStream(jsm, {
    name: STREAMS.timers.name,
    subjects: [...STREAMS.timers.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Workqueue,
    num_replicas: opts.replicas,
    duplicate_window: 120_000 * NS,
    max_msg_size: 64 * 1024,
  });
  // the security audit trail: hash-chained records per tenant, kept forever, never deleted or purged
  await ensureStream(jsm, {
    name: STREAMS.audit.name,
    subjects: [...STREAMS.audit.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: opts.replicas,
    duplicate_window: 120_000 * NS,
    max_msg_size: 64 * 1024,
    allow_direct: true,
    deny_delete: true,
    deny_purge: true,
  });
  for (const c of Object.values(CONSUMERS)) {
    const config = {
      durable_name: c.durable,
      filter_subject: c.filter,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: opts.ackWaitMs * NS,
      max_deliver: -1,
      max_ack_pending: 'maxAckPending' in c ? c.maxAckPending : 4096,
    };
    try {
      await jsm.consumers.info(c.stream, c.durable);
      await jsm.consumers.update(c.stream, c.durable, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending });
    } catch (e) {
      if ((e as { name?: string }).name !== 'ConsumerNotFoundError') throw e;
      await jsm.consumers.add(c.stream, config);
    }
  }
  for (const r of RETIRED_CONSUMERS) {
    await jsm.consumers.delete(r.stream, r.durable).catch((e: unknown) => {
      if ((e as { name?: string }).name !== 'ConsumerNotFoundError') throw e;
    });
  }
  const kvm = new Kvm(nc);
  // session memory first, with its TTL, so the loop below finds it (Kvm.create opens an existing bucket)
  const sessionTtlMs = opts.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
  for (const bucket of SESSION_TTL_BUCKETS) {
    await kvm.create(bucket, { replicas: opts.replicas, history: 1, ttl: sessionTtlMs });
    const sessionStream = `KV_${bucket}`;
    const sessionInfo = await jsm.streams.info(sessionStream);
    if (sessionInfo.config.max_age !== sessionTtlMs * NS) await jsm.streams.update(sessionStream, { ...sessionInfo.config, max_age: sessionTtlMs * NS });
  }
  // redeemed delegation ids (single use): kept longer than any delegation lives, then they age out
  await kvm.create(BUCKETS.delegationReplay, { replicas: opts.replicas, history: 1, ttl: DELEGATION_REPLAY_TTL_MS });
  const replayStream = `KV_${BUCKETS.delegationReplay}`;
  const replayInfo = await jsm.streams.info(replayStream);
  if (replayInfo.config.max_age !== DELEGATION_REPLAY_TTL_MS * NS) await jsm.streams.update(replayStream, { ...replayInfo.config, max_age: DELEGATION_REPLAY_TTL_MS * NS });
  for (const b of Object.values(BUCKETS)) await kvm.create(b, { replicas: opts.replicas, history: 1 });
  // large payloads (tool results over 64 KiB)
  for (const o of Object.values(OBJECT_STORES)) await new Objm(nc).create(o, { replicas: opts.replicas });
}

/** Opens a provisioned bucket. */
export async function openBucket(nc: NatsConnection, name: string): Promise<KV> {
  return new Kvm(nc).open(name);
}

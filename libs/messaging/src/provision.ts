import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { BUCKETS, CONSUMERS, STREAMS } from '#libs/contracts';

export interface ProvisionOptions {
  replicas: number;
  ackWaitMs: number;
}

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
  for (const c of Object.values(CONSUMERS)) {
    const config = {
      durable_name: c.durable,
      filter_subject: c.filter,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: opts.ackWaitMs * NS,
      max_deliver: -1,
      max_ack_pending: 4096,
    };
    try {
      await jsm.consumers.info(c.stream, c.durable);
      await jsm.consumers.update(c.stream, c.durable, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending });
    } catch (e) {
      if ((e as { name?: string }).name !== 'ConsumerNotFoundError') throw e;
      await jsm.consumers.add(c.stream, config);
    }
  }
  const kvm = new Kvm(nc);
  for (const b of Object.values(BUCKETS)) await kvm.create(b, { replicas: opts.replicas, history: 1 });
}

/** Opens a provisioned bucket. */
export async function openBucket(nc: NatsConnection, name: string): Promise<KV> {
  return new Kvm(nc).open(name);
}

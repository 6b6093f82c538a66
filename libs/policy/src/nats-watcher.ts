import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Watcher } from 'casbin';
import { randomUUID } from 'node:crypto';
import { POLICY_CHANGED_SUBJECT as CHANNEL } from '#libs/contracts';

/**
 * The core-NATS subject on which policy changes are announced (`svc.v1.policy.changed`, from
 * `#libs/contracts` channels). One subject for every tenant: a change triggers a full reload,
 * which is cheap, and a single subject keeps the subscription count flat. Pass `subject` to override.
 */
export const POLICY_CHANGED_SUBJECT = CHANNEL;

/** The notification payload: who changed the policy and, for information, which tenant. */
export interface PolicyChangedMessage {
  readonly origin: string;
  readonly tenant?: string;
}

/** A Casbin Watcher whose update() may name the tenant that changed. */
export interface PolicyWatcher extends Watcher {
  update(tenant?: string): Promise<boolean>;
}

export interface NatsPolicyWatcherOptions {
  subject?: string;
  /** Identifies this instance so it ignores its own announcements; random by default. */
  instanceId?: string;
}

/**
 * Casbin Watcher over core NATS. update() publishes on `svc.v1.policy.changed`; every other instance
 * that receives it runs its update callback (PolicyService reloads). A reconnect also runs the
 * callback, since announcements published while disconnected are lost.
 *
 * The watcher does not own the connection: close() unsubscribes, the caller closes `nc`.
 */
export class NatsPolicyWatcher implements PolicyWatcher {
  readonly instanceId: string;
  readonly subject: string;
  private callback: (() => void) | undefined;
  private readonly sub: Subscription;
  private readonly statusIter: AsyncIterable<{ type: string }>;
  private closed = false;

  private constructor(private readonly nc: NatsConnection, opts: NatsPolicyWatcherOptions) {
    this.instanceId = opts.instanceId ?? randomUUID();
    this.subject = opts.subject ?? POLICY_CHANGED_SUBJECT;
    this.sub = nc.subscribe(this.subject, {
      callback: (err, msg) => {
        if (err || this.closed) return;
        let origin: string | undefined;
        try {
          origin = (JSON.parse(msg.string()) as Partial<PolicyChangedMessage>).origin;
        } catch {
          origin = undefined; // unreadable announcement: reloading is always safe
        }
        if (origin !== this.instanceId) this.fire();
      },
    });
    this.statusIter = nc.status();
    void this.watchStatus();
  }

  /** Subscribes and waits until the server has registered the subscription. */
  static async create(nc: NatsConnection, opts: NatsPolicyWatcherOptions = {}): Promise<NatsPolicyWatcher> {
    const w = new NatsPolicyWatcher(nc, opts);
    await nc.flush();
    return w;
  }

  setUpdateCallback(cb: () => void): void {
    this.callback = cb;
  }

  /** Announces a change to every other instance. */
  async update(tenant?: string): Promise<boolean> {
    if (this.closed || this.nc.isClosed()) return false;
    const msg: PolicyChangedMessage = tenant ? { origin: this.instanceId, tenant } : { origin: this.instanceId };
    this.nc.publish(this.subject, JSON.stringify(msg));
    await this.nc.flush();
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.callback = undefined;
    if (!this.nc.isClosed()) this.sub.unsubscribe();
    (this.statusIter as { stop?: () => void }).stop?.();
  }

  private fire(): void {
    const cb = this.callback;
    if (cb) cb();
  }

  private async watchStatus(): Promise<void> {
    try {
      for await (const s of this.statusIter) {
        if (this.closed) break;
        if (s.type === 'reconnect') this.fire();
      }
    } catch {
      // the status stream ends with the connection
    }
  }
}

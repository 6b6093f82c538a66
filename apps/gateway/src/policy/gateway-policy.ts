import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { LOGGER, NATS } from '#libs/messaging';
import { NatsPolicyWatcher, PolicyService } from '#libs/policy';
import { STORE, type Repositories } from '#libs/store';
import type { Logger } from '#libs/telemetry';

/**
 * The gateway's PolicyService: tenant rules through the store (`store.policies`: JetStream KV
 * `am_policy` by default, the `policies` collection when MONGODB_URI is set), changes
 * announced on `svc.v1.policy.changed` (NatsPolicyWatcher) so that every other gateway instance
 * reloads at once (and after every reconnect, catching up on announcements it missed). The
 * Authorizer decides every REST route and gRPC method with it; the policy API edits it.
 */
@Injectable()
export class GatewayPolicy implements OnModuleInit, OnModuleDestroy {
  private svc?: PolicyService;
  private watcher?: NatsPolicyWatcher;

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(STORE) private readonly store: Repositories,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onModuleInit(): Promise<void> {
    this.watcher = await NatsPolicyWatcher.create(this.nc);
    this.svc = await PolicyService.create({
      adapter: this.store.policies,
      watcher: this.watcher,
      onError: (err) => this.logger.error({ err }, 'policy reload or announcement failed'),
    });
  }

  onModuleDestroy(): void {
    this.svc?.close();
    this.watcher?.close();
  }

  get service(): PolicyService {
    if (!this.svc) throw new Error('the policy is not loaded yet');
    return this.svc;
  }
}

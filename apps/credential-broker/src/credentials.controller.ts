import { Payload } from '@nestjs/microservices';
import type { RpcMap } from '#libs/contracts';
import { MessageController, OnRpc } from '#libs/messaging';
import { CredentialBroker } from './broker.service.js';

/** The broker's questions over NATS request/reply (queue group `credential-broker`). */
@MessageController()
export class CredentialsController {
  constructor(private readonly broker: CredentialBroker) {}

  @OnRpc('credentials.put')
  put(@Payload() req: RpcMap['credentials.put']['req']) {
    return this.broker.put(req);
  }

  @OnRpc('credentials.list')
  list(@Payload() req: RpcMap['credentials.list']['req']) {
    return this.broker.list(req);
  }

  @OnRpc('credentials.revoke')
  revoke(@Payload() req: RpcMap['credentials.revoke']['req']) {
    return this.broker.revoke(req);
  }

  @OnRpc('credentials.mint')
  mint(@Payload() req: RpcMap['credentials.mint']['req']) {
    return this.broker.mint(req);
  }

  @OnRpc('credentials.redeem')
  redeem(@Payload() req: RpcMap['credentials.redeem']['req']) {
    return this.broker.redeem(req);
  }

  @OnRpc('credentials.keys')
  keys() {
    return this.broker.keyStatus();
  }

  @OnRpc('credentials.rotate')
  rotate(@Payload() req: RpcMap['credentials.rotate']['req']) {
    return this.broker.rotate(req ?? {});
  }
}

import type { ServiceDefinition } from '#libs/messaging';
import { StoreModule } from '#libs/store';
import { CredentialBroker } from './broker.service.js';
import { CredentialsController } from './credentials.controller.js';

/**
 * The credential-broker: per-tenant secrets encrypted at rest, short-lived scoped delegations
 * minted for the orchestrator and redeemed by the tool-runner, all over NATS RPC. See README.md.
 */
export const credentialBroker: ServiceDefinition = {
  service: 'credential-broker',
  // credentials through libs/store (MongoDB when MONGODB_URI is set, KV otherwise); key ring and replay cache on KV
  module: { imports: [StoreModule.forRoot()], controllers: [CredentialsController], providers: [CredentialBroker] },
};

import type { ServiceDefinition } from '#libs/messaging';
import { CredentialBroker } from './broker.service.js';
import { CredentialsController } from './credentials.controller.js';

/**
 * The credential-broker: per-tenant secrets encrypted at rest, short-lived scoped delegations
 * minted for the orchestrator and redeemed by the tool-runner, all over NATS RPC. See README.md.
 */
export const credentialBroker: ServiceDefinition = {
  service: 'credential-broker',
  module: { controllers: [CredentialsController], providers: [CredentialBroker] },
};

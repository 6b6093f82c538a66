import { runServiceMain } from '#libs/messaging';
import { credentialBroker } from './service.js';

await runServiceMain(credentialBroker);

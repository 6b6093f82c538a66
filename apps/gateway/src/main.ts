import { runServiceMain } from '#libs/messaging';
import { gateway } from './service.js';

await runServiceMain(gateway);

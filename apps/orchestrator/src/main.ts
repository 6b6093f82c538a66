import { runServiceMain } from '#libs/messaging';
import { orchestrator } from './service.js';

await runServiceMain(orchestrator);

import { runServiceMain } from '#libs/messaging';
import { toolRunner } from './service.js';

await runServiceMain(toolRunner);

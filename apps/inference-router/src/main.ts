import { runServiceMain } from '#libs/messaging';
import { inferenceRouter } from './service.js';

await runServiceMain(inferenceRouter);

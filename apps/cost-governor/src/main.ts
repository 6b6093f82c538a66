import { runServiceMain } from '#libs/messaging';
import { costGovernor } from './service.js';

await runServiceMain(costGovernor);

import { CONSUMERS } from '#libs/contracts';
import type { ServiceDefinition } from '#libs/messaging';
import { CommandsController } from './commands.controller.js';
import { RunIndexWriter } from './run-index.js';
import { RunEngine } from './run-engine.service.js';

export const orchestrator: ServiceDefinition = {
  service: 'orchestrator',
  module: { controllers: [CommandsController], providers: [RunEngine, RunIndexWriter] },
  consumers: [CONSUMERS.orchestrator],
};

import { CONSUMERS } from '#libs/contracts';
import type { ServiceDefinition } from '#libs/messaging';
import { ToolExecutor } from './executor.service.js';
import { ToolRegistry } from './registry.service.js';
import { ToolsController } from './tools.controller.js';

export const toolRunner: ServiceDefinition = {
  service: 'tool-runner',
  module: { controllers: [ToolsController], providers: [ToolRegistry, ToolExecutor] },
  consumers: [CONSUMERS.toolRunner],
};

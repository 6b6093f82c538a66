import { CONSUMERS } from '#libs/contracts';
import type { ServiceDefinition } from '#libs/messaging';
import { ToolExecutor } from './executor.service.js';
import { McpClientService } from './mcp-client.js';
import { ToolRegistry } from './registry.service.js';
import { ResultStore } from './result-store.js';
import { SessionMemory } from './session-memory.js';
import { ToolsController } from './tools.controller.js';

export const toolRunner: ServiceDefinition = {
  service: 'tool-runner',
  module: { controllers: [ToolsController], providers: [McpClientService, ToolRegistry, SessionMemory, ResultStore, ToolExecutor] },
  consumers: [CONSUMERS.toolRunner],
};

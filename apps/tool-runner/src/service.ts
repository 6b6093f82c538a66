import { CONSUMERS } from '#libs/contracts';
import type { ServiceDefinition } from '#libs/messaging';
import { StoreModule } from '#libs/store';
import { ToolExecutor } from './executor.service.js';
import { McpClientService } from './mcp-client.js';
import { ToolRegistry } from './registry.service.js';
import { ResultStore } from './result-store.js';
import { SessionMemory } from './session-memory.js';
import { ToolsController } from './tools.controller.js';

export const toolRunner: ServiceDefinition = {
  service: 'tool-runner',
  // the tool catalog through libs/store (MongoDB when MONGODB_URI is set, KV otherwise)
  module: { imports: [StoreModule.forRoot()], controllers: [ToolsController], providers: [McpClientService, ToolRegistry, SessionMemory, ResultStore, ToolExecutor] },
  consumers: [CONSUMERS.toolRunner],
};

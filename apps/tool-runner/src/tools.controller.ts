import { Ctx, Payload } from '@nestjs/microservices';
import {
  invalid, isTenantId, SchemaValidator, toolBodySchema, type CommandMap, type RpcMap, type ToolDefinition,
} from '#libs/contracts';
import { JsContext, MessageController, OnCommand, OnRpc } from '#libs/messaging';
import { ToolExecutor } from './executor.service.js';
import { ToolRegistry } from './registry.service.js';
import { ResultStore } from './result-store.js';

const validator = new SchemaValidator();

function tenantOf(req: { tenantId: string }): string {
  if (!isTenantId(req.tenantId)) throw invalid('tenantId is not a valid tenant id');
  return req.tenantId;
}

/** The tool registry's questions (RPC) and the tool-runner's work (tool.execute commands). */
@MessageController()
export class ToolsController {
  constructor(private readonly registry: ToolRegistry, private readonly executor: ToolExecutor, private readonly results: ResultStore) {}

  @OnRpc('tools.put')
  async put(@Payload() req: RpcMap['tools.put']['req']) {
    const { name, ...body } = req.tool;
    validator.assert('tool-body', toolBodySchema, body, 'tool definition');
    const schemaError = validator.compileError(req.tool.inputSchema);
    if (schemaError) throw invalid(`inputSchema is not a valid JSON Schema: ${schemaError}`, [{ field: '/inputSchema', message: schemaError }]);
    const def: ToolDefinition = { egress: [], timeoutMs: 30_000, description: '', ...body, name };
    return this.registry.put(tenantOf(req), def);
  }

  @OnRpc('tools.list')
  async list(@Payload() req: RpcMap['tools.list']['req']) {
    return { tools: await this.registry.list(tenantOf(req)) };
  }

  @OnRpc('tools.get')
  async get(@Payload() req: RpcMap['tools.get']['req']) {
    const tenantId = tenantOf(req);
    const reason = await this.registry.disabledReason(tenantId, req.name);
    return { versions: await this.registry.versionsOf(tenantId, req.name), disabled: reason !== undefined, ...(reason ? { disabledReason: reason } : {}) };
  }

  @OnRpc('tools.setDisabled')
  async setDisabled(@Payload() req: RpcMap['tools.setDisabled']['req']) {
    await this.registry.setDisabled(tenantOf(req), req.name, req.disabled);
    return { name: req.name, disabled: req.disabled };
  }

  @OnRpc('tools.resolve')
  async resolve(@Payload() req: RpcMap['tools.resolve']['req']) {
    return { tools: await this.registry.resolve(tenantOf(req), req.refs) };
  }

  /** Reads back an offloaded result (`resultRef`); only its tenant can. */
  @OnRpc('results.get')
  async result(@Payload() req: RpcMap['results.get']['req']) {
    if (typeof req.ref !== 'string' || req.ref.length === 0 || req.ref.length > 1024) throw invalid('ref must be a result reference', [{ field: 'ref', message: 'required' }]);
    return this.results.read(tenantOf(req), req.ref, req.offset, req.length);
  }

  @OnCommand('tool.execute')
  execute(@Payload() cmd: CommandMap['tool.execute'], @Ctx() ctx: JsContext) {
    tenantOf(cmd);
    return this.executor.execute(cmd, ctx);
  }
}

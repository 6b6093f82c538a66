import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { NatsConnection } from '@nats-io/transport-node';
import { invalid, isResourceName, notFound, type ToolRegistration } from '#libs/contracts';
import { NATS, RpcClient } from '#libs/messaging';
import { Operation } from '../http/auth.js';

/** Tools live in the tool-runner's registry; the gateway asks it over NATS. */
@Controller('v1/tenants/:t/tools')
export class ToolsController {
  private readonly rpc: RpcClient;
  constructor(@Inject(NATS) nc: NatsConnection) {
    this.rpc = new RpcClient(nc);
  }

  @Put(':name')
  @Operation('tools.put')
  async put(@Param('t') t: string, @Param('name') name: string, @Body() body: unknown, @Res({ passthrough: true }) res: Response) {
    if (!isResourceName(name)) throw notFound(`tool ${name}`);
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('the body must be a JSON object', [{ field: '/', message: 'must be object' }]);
    const { tool, created } = await this.rpc.call('tools.put', { tenantId: t, tool: { ...(body as Omit<ToolRegistration, 'name'>), name } });
    res.status(created ? 201 : 200);
    return tool;
  }

  @Get()
  @Operation('tools.list')
  list(@Param('t') t: string) {
    return this.rpc.call('tools.list', { tenantId: t });
  }

  @Get(':name')
  @Operation('tools.get')
  async get(@Param('t') t: string, @Param('name') name: string) {
    const r = await this.rpc.call('tools.get', { tenantId: t, name });
    if (!r.versions.length) throw notFound(`tool ${name}`);
    return { name, ...r };
  }

  @Post(':name/disable')
  @Operation('tools.disable')
  @HttpCode(200)
  disable(@Param('t') t: string, @Param('name') name: string) {
    return this.rpc.call('tools.setDisabled', { tenantId: t, name, disabled: true });
  }

  @Post(':name/enable')
  @Operation('tools.enable')
  @HttpCode(200)
  enable(@Param('t') t: string, @Param('name') name: string) {
    return this.rpc.call('tools.setDisabled', { tenantId: t, name, disabled: false });
  }
}

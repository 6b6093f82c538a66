import { Body, Controller, Get, Param, Put, Res } from '@nestjs/common';
import type { Response } from 'express';
import { agentBodySchema, isResourceName, notFound, SchemaValidator, type AgentSpec } from '#libs/contracts';
import { Operation } from '../http/auth.js';
import { AgentsService } from './agents.service.js';

const v = new SchemaValidator();

@Controller('v1/tenants/:t/agents')
export class AgentsController {
  constructor(private readonly agents: AgentsService) {}

  /** Defines an agent version: 201 when new, 200 when the same body is sent again, 409 for another body. */
  @Put(':name')
  @Operation('agents.put')
  async put(@Param('t') t: string, @Param('name') name: string, @Body() body: unknown, @Res({ passthrough: true }) res: Response) {
    if (!isResourceName(name)) throw notFound(`agent ${name}`);
    const b = v.assert<Omit<AgentSpec, 'name' | 'tools' | 'limits'> & Partial<Pick<AgentSpec, 'tools' | 'limits'>>>('agent-body', agentBodySchema, body, 'agent definition');
    const spec: AgentSpec = { tools: [], limits: {}, ...b, name };
    const { agent, created } = await this.agents.put(t, spec);
    res.status(created ? 201 : 200);
    return agent;
  }

  @Get(':name')
  @Operation('agents.get')
  async get(@Param('t') t: string, @Param('name') name: string) {
    const versions = await this.agents.versionsOf(t, name);
    if (!versions.length) throw notFound(`agent ${name}`);
    return { name, versions };
  }

  @Get()
  @Operation('agents.list')
  async list(@Param('t') t: string) {
    return { agents: await this.agents.list(t) };
  }
}

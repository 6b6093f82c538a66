import { Body, Controller, Delete, HttpCode, Param, Post } from '@nestjs/common';
import { createTenantBodySchema, issueKeyBodySchema, SchemaValidator, type Role } from '#libs/contracts';
import { Operation } from '../http/auth.js';
import { TenantsService } from './keys.service.js';

const v = new SchemaValidator();

@Controller('v1/tenants')
export class TenantsController {
  constructor(private readonly tenants: TenantsService) {}

  /** Creates a tenant (platform admin). */
  @Post()
  @Operation('tenants.create')
  async create(@Body() body: unknown) {
    const b = v.assert<{ id: string; name?: string }>('create-tenant', createTenantBodySchema, body);
    return this.tenants.createTenant(b.id, b.name);
  }

  /** Issues an API key; the key is in this response and never again. */
  @Post(':t/api-keys')
  @Operation('apikeys.issue')
  async issue(@Param('t') t: string, @Body() body: unknown) {
    const b = v.assert<{ roles: Role[]; name?: string }>('issue-key', issueKeyBodySchema, body);
    const { record, key } = await this.tenants.issueKey(t, b.roles, b.name);
    return { id: record.id, key, tenantId: t, name: record.name, roles: record.roles, createdAt: record.createdAt };
  }

  @Delete(':t/api-keys/:id')
  @Operation('apikeys.revoke')
  @HttpCode(204)
  async revoke(@Param('t') t: string, @Param('id') id: string) {
    await this.tenants.revokeKey(t, id);
  }
}

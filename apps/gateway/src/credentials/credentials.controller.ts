import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Put, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { NatsConnection } from '@nats-io/transport-node';
import { credentialBodyProblems, invalid, isResourceName, notFound, type CredentialInput } from '#libs/contracts';
import { NATS, RpcClient } from '#libs/messaging';
import { Operation } from '../http/auth.js';

/**
 * Validates a credential body. The 400 names fields and rules only; it never quotes a value, so a
 * secret sent in a malformed body does not come back in the error.
 */
export function assertCredentialBody(body: unknown): CredentialInput {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('the body must be a JSON object', [{ field: '/', message: 'must be object' }]);
  const problems = credentialBodyProblems(body);
  if (problems.length) throw invalid(`credential is invalid: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems);
  return body as CredentialInput;
}

/**
 * Credentials live in the credential-broker (encrypted per tenant); the gateway asks it over NATS.
 * Secret material goes in with PUT and never comes out: every answer is metadata.
 */
@Controller('v1/tenants/:t/credentials')
export class CredentialsController {
  private readonly rpc: RpcClient;
  constructor(@Inject(NATS) nc: NatsConnection) {
    this.rpc = new RpcClient(nc);
  }

  @Put(':name')
  @Operation('credentials.put')
  async put(@Param('t') t: string, @Param('name') name: string, @Body() body: unknown, @Res({ passthrough: true }) res: Response) {
    if (!isResourceName(name)) throw notFound(`credential ${name}`);
    const credential = assertCredentialBody(body);
    const r = await this.rpc.call('credentials.put', { tenantId: t, name, credential });
    res.status(r.created ? 201 : 200);
    return r.credential;
  }

  @Get()
  @Operation('credentials.list')
  list(@Param('t') t: string) {
    return this.rpc.call('credentials.list', { tenantId: t });
  }

  /** Revokes: the next call of a tool that uses the credential fails closed (`credential_revoked`). */
  @Delete(':name')
  // the policy catalogue has no credentials.revoke yet: revoking is a credential write (owner, developer)
  @Operation('credentials.put')
  @HttpCode(204)
  async revoke(@Param('t') t: string, @Param('name') name: string): Promise<void> {
    if (!isResourceName(name)) throw notFound(`credential ${name}`);
    await this.rpc.call('credentials.revoke', { tenantId: t, name });
  }
}

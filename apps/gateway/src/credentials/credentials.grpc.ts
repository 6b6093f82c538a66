import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { isResourceName, notFound, type CredentialView } from '#libs/contracts';
import type { RpcClient } from '#libs/messaging';
import { enumFromRest, toPbTimestamp, type PbCredential, type PbListCredentialsResponse, type PbPutCredentialRequest, type PbPutCredentialResponse, type PbRevokeCredentialRequest, type PbRevokeCredentialResponse, type PbTenantRequest } from '#libs/sdk';
import { required, unary, type CallContext, type CallDeps } from '../grpc/call.js';
import { compact, given, restEnum } from '../grpc/mapping.js';
import { assertCredentialBody } from './credentials.controller.js';

/** PutCredentialRequest → the REST body of PUT /v1/tenants/{t}/credentials/{name} (secret material included). */
export function credentialBodyFromPb(req: PbPutCredentialRequest): Record<string, unknown> {
  const o = req.oauth2_client_credentials;
  return compact({
    kind: restEnum('CREDENTIAL_KIND', req.kind),
    secret: given(req.secret),
    clientId: given(o?.client_id),
    clientSecret: given(o?.client_secret),
    tokenUrl: given(o?.token_url),
    allowedTools: req.allowed_tools?.length ? req.allowed_tools : undefined,
    scopes: req.scopes?.length ? req.scopes : undefined,
  });
}

/** Metadata only: PbCredential has no field for secret material. */
export function credentialToPb(c: CredentialView): PbCredential {
  return {
    name: c.name, kind: enumFromRest('CREDENTIAL_KIND', c.kind), allowed_tools: c.allowedTools, scopes: c.scopes,
    created_at: toPbTimestamp(c.createdAt), updated_at: toPbTimestamp(c.updatedAt),
  };
}

/** `agentmesh.v1.Credentials`: REST's twin, same operation ids, body validation and errors. */
export function credentialsService(rpc: RpcClient, deps: CallDeps, method: (name: string) => string): UntypedServiceImplementation {
  return {
    PutCredential: unary(method('PutCredential'), deps, async (req: PbPutCredentialRequest, ctx: CallContext): Promise<PbPutCredentialResponse> => {
      const body = credentialBodyFromPb(req);
      await ctx.authorize('credentials.put', req.tenant, undefined);
      const name = required(req.name, 'name');
      if (!isResourceName(name)) throw notFound(`credential ${name}`);
      const credential = assertCredentialBody(body);
      ctx.checkpoint();
      const r = await rpc.call('credentials.put', { tenantId: req.tenant!, name, credential });
      return { credential: credentialToPb(r.credential), created: r.created };
    }),
    ListCredentials: unary(method('ListCredentials'), deps, async (req: PbTenantRequest, ctx: CallContext): Promise<PbListCredentialsResponse> => {
      await ctx.authorize('credentials.list', req.tenant, undefined);
      return { credentials: (await rpc.call('credentials.list', { tenantId: req.tenant! })).credentials.map(credentialToPb) };
    }),
    // REST DELETE /credentials/{name} is decided as a credential write (credentials.put), and so is this
    RevokeCredential: unary(method('RevokeCredential'), deps, async (req: PbRevokeCredentialRequest, ctx: CallContext): Promise<PbRevokeCredentialResponse> => {
      await ctx.authorize('credentials.put', req.tenant, undefined);
      const name = required(req.name, 'name');
      if (!isResourceName(name)) throw notFound(`credential ${name}`);
      ctx.checkpoint();
      await rpc.call('credentials.revoke', { tenantId: req.tenant!, name });
      return { name };
    }),
  };
}

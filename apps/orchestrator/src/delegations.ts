import { AgentmeshError, CREDENTIAL_FAILURES, type CommandMap, type RpcMap } from '#libs/contracts';
import { RetryLaterError } from '#libs/messaging';

/** What withDelegation needs of an RpcClient. */
export interface DelegationRpc {
  call(name: 'credentials.mint', req: RpcMap['credentials.mint']['req']): Promise<RpcMap['credentials.mint']['res']>;
}

const CREDENTIAL_CODES = new Set<string>(CREDENTIAL_FAILURES);

/**
 * The `tool.execute` command to publish for one call. A tool whose pinned definition names a
 * credential gets a delegation minted by the credential-broker for exactly this call: tenant, run,
 * step, tool name@version, audience `agentmesh-tool-runner`, scopes = the credential's allowed
 * scopes ∩ the tool's requested scopes, single use, short-lived (AGENTMESH_DELEGATION_TTL). Call it
 * at dispatch, on the command only: the delegation must never reach the journal (the journal's
 * `tool.called` is built from the decision, not from this command).
 *
 * - The broker refuses (revoked, not found, tool not in allowedTools, scopes): the command goes out
 *   without a delegation and with `credentialError`, and the tool-runner fails the call closed with
 *   that code (`tool.failed`, e.g. `credential_revoked`), so the run records why.
 * - The broker does not answer: RetryLaterError, the message comes back and the call waits.
 */
export async function withDelegation(rpc: DelegationRpc, cmd: CommandMap['tool.execute']): Promise<CommandMap['tool.execute']> {
  const { delegation: _stale, credentialError: _staleError, ...base } = cmd;
  const credential = cmd.tool.credential;
  if (!credential) return base;
  try {
    const minted = await rpc.call('credentials.mint', {
      tenantId: cmd.tenantId,
      runId: cmd.runId,
      step: cmd.step,
      callKey: cmd.callKey,
      tool: { name: cmd.tool.name, version: cmd.tool.version },
      credential: { name: credential.name, scopes: credential.scopes ?? [] },
    });
    return { ...base, delegation: minted.delegation };
  } catch (e) {
    if (e instanceof AgentmeshError && e.code !== 'unavailable' && e.code !== 'internal') {
      const reason = e.extra.reason;
      const code = reason && CREDENTIAL_CODES.has(reason) ? reason : 'credential_unavailable';
      return { ...base, credentialError: { code, message: e.message } };
    }
    throw new RetryLaterError('the credential broker is unavailable; the tool call waits for a delegation', 1000, { cause: e });
  }
}

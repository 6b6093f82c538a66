import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from '@jest/globals';
import { AgentmeshGrpcError } from '#libs/sdk';
import { client, followEvents, startMesh, type Api, type Mesh, type SseEvent } from '../../scripts/mesh.mjs';

export type { Api, Mesh, SseEvent };
export { client, followEvents };

/**
 * Starts the whole mesh as `npm start` does (nats-server + six service processes from dist/), on
 * free ports with a temporary data folder. `npm run test:e2e` builds dist/ first.
 */
export async function startTestMesh(env: Record<string, string> = {}): Promise<Mesh & { cleanup(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'agentmesh-e2e-'));
  const mesh = await startMesh({ dataDir, freePorts: true, quiet: true, env: { LOG_LEVEL: 'info', AGENTMESH_ACK_WAIT: '3s', ...env } });
  return Object.assign(mesh, {
    async cleanup() {
      await mesh.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

let tenantSeq = 0;
/** Creates a fresh tenant with one key per requested role set; returns clients. */
export async function newTenant(mesh: Mesh, prefix = 't'): Promise<{ id: string; owner: Api; ownerKey: string; keyFor(roles: string[]): Promise<{ api: Api; key: string; id: string }> }> {
  const id = `${prefix}-${process.pid}-${++tenantSeq}`;
  const admin = client(mesh.gatewayUrl, mesh.adminKey);
  const t = await admin('POST', '/v1/tenants', { id });
  if (t.status !== 201) throw new Error(`tenant: ${t.status} ${JSON.stringify(t.body)}`);
  const keyFor = async (roles: string[]) => {
    const k = await admin('POST', `/v1/tenants/${id}/api-keys`, { roles });
    if (k.status !== 201) throw new Error(`key: ${k.status} ${JSON.stringify(k.body)}`);
    return { api: client(mesh.gatewayUrl, k.body.key), key: k.body.key as string, id: k.body.id as string };
  };
  const owner = await keyFor(['owner']);
  return { id, owner: owner.api, ownerKey: owner.key, keyFor };
}

/** Polls until `check` returns a value, or fails after `timeoutMs` naming what it waited for. */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits for a run to reach a terminal status and returns it. */
export async function waitForRun(api: Api, tenant: string, runId: string, timeoutMs = 20_000) {
  return eventually(async () => {
    const r = await api('GET', `/v1/tenants/${tenant}/runs/${runId}`);
    return ['completed', 'failed', 'cancelled'].includes(r.body?.status) ? r.body : null;
  }, `run ${runId} to finish`, timeoutMs);
}

/** Runs `fn` and returns the AgentmeshGrpcError it fails with (the test fails if it succeeds or fails otherwise). */
export async function grpcFailure(fn: () => Promise<unknown>): Promise<AgentmeshGrpcError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AgentmeshGrpcError);
    return e as AgentmeshGrpcError;
  }
  throw new Error('expected the call to fail');
}

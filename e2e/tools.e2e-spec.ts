import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, RpcClient } from '#libs/messaging';
import { startMcpServer, type McpFixture } from '../apps/tool-runner/test/fixtures.js';
import { followEvents, newTenant, startTestMesh, waitForRun, type Api, type Mesh, type SseEvent } from './support/harness.js';

/** An MCP tool and a large (offloaded) result through real runs of the whole mesh. */
describe('tools through a run', () => {
  let mesh: Mesh & { cleanup(): Promise<void> };
  let mcp: McpFixture;
  let api: Api;
  let key: string;
  let t: string;
  let nc: NatsConnection;

  beforeAll(async () => {
    mcp = await startMcpServer();
    mesh = await startTestMesh();
    const tenant = await newTenant(mesh, 'tools');
    api = tenant.owner; key = tenant.ownerKey; t = tenant.id;
    nc = await connectNats(mesh.natsUrl, 'tools-e2e');
    const mcpTool = (tool: string) => ({
      version: '1', description: `mcp ${tool}`, riskTier: 'read', inputSchema: { type: 'object' },
      transport: { kind: 'mcp', url: mcp.url, tool }, egress: [`127.0.0.1:${mcp.port}`], timeoutMs: 10_000,
    });
    const lookup = await api('PUT', `/v1/tenants/${t}/tools/lookup`, mcpTool('lookup'));
    expect(lookup.status).toBe(201);
    const big = await api('PUT', `/v1/tenants/${t}/tools/big`, mcpTool('big'));
    expect(big.status).toBe(201);
    const agent = await api('PUT', `/v1/tenants/${t}/agents/researcher`, {
      version: '1', planner: 'graph', tools: ['lookup', 'big'], limits: { maxSteps: 10 },
      steps: [
        { id: 'look', tool: 'lookup', args: { word: '{{input.word}}' } },
        { id: 'dump', tool: 'big', args: { kib: 200 } },
      ],
      output: { meaning: '{{steps.look.result.meaning}}', ref: '{{steps.dump.result.resultRef}}' },
    });
    expect(agent.status).toBe(201);
  });
  afterAll(async () => {
    await nc?.close();
    await mesh?.cleanup();
    await mcp?.close();
  });

  it('calls an MCP tool and offloads a 200 KiB result, which only its tenant reads back', async () => {
    const run = await api('POST', `/v1/tenants/${t}/runs`, { agent: 'researcher', input: { word: 'mesh' } });
    expect(run.status).toBe(201);
    const done = await waitForRun(api, t, run.body.id, 30_000);
    expect(done).toMatchObject({ status: 'completed', steps: 2 });
    expect(done.output.meaning).toBe('a word');
    const ref: string = done.output.ref;
    expect(ref.startsWith(`${t}/`)).toBe(true);

    const events: SseEvent[] = [];
    await followEvents(mesh.gatewayUrl, key, `/v1/tenants/${t}/runs/${run.body.id}/events`, (e) => events.push(e));
    const completed = events.filter((e) => e.event === 'tool.completed').map((e) => e.data as { data: { result: unknown; resultRef?: string } });
    expect(completed[0].data.result).toMatchObject({ word: 'mesh', meaning: 'a word' });
    expect(completed[1].data.resultRef).toBe(ref);
    expect(completed[1].data.result).toMatchObject({ resultRef: ref, bytes: expect.any(Number), preview: expect.any(String) });
    expect(JSON.stringify(completed[1]).length).toBeLessThan(4096); // the journal holds the preview, not the body

    const rpc = new RpcClient(nc, 10_000);
    const back = await rpc.call('results.get', { tenantId: t, ref });
    expect((back.result as { text: string }).text).toHaveLength(200 * 1024);
    const other = await newTenant(mesh, 'other');
    await expect(rpc.call('results.get', { tenantId: other.id, ref })).rejects.toMatchObject({ code: 'not_found' });
  });
});

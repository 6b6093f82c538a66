import { AgentmeshError, type JsonValue, type PinnedTool, type PlannerToolView, type ToolRecord } from '#libs/contracts';
import { RetryLaterError, type RpcClient } from '#libs/messaging';

/** What a planner and the model learn of a tool version: its description and input schema. */
export interface ToolDescription {
  description?: string;
  inputSchema?: Record<string, JsonValue>;
}

const MAX_CACHED = 10_000;

/**
 * Definitions of pinned tool versions from the tool registry (`tools.get`), for the model's
 * function tools and external planners' views. A version is immutable, so its definition is
 * cached for good: a run's later steps, and later runs, cost no round trip.
 */
export class ToolCatalog {
  private readonly cache = new Map<string, ToolDescription>();

  constructor(private readonly rpc: Pick<RpcClient, 'call'>) {}

  async describe(tenantId: string, tools: readonly PinnedTool[]): Promise<Map<string, ToolDescription>> {
    const out = new Map<string, ToolDescription>();
    await Promise.all(tools.map(async (t) => out.set(t.name, await this.one(tenantId, t))));
    return out;
  }

  /** The planner's view of the tools, with definitions. */
  async view(tenantId: string, tools: readonly PinnedTool[]): Promise<PlannerToolView[]> {
    const defs = await this.describe(tenantId, tools);
    return tools.map((t) => ({ name: t.name, version: t.version, riskTier: t.riskTier, ...defs.get(t.name) }));
  }

  private async one(tenantId: string, t: PinnedTool): Promise<ToolDescription> {
    const key = `${tenantId}/${t.name}@${t.version}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    let versions: ToolRecord[];
    try {
      versions = (await this.rpc.call('tools.get', { tenantId, name: t.name })).versions;
    } catch (e) {
      if (e instanceof AgentmeshError && e.code === 'not_found') versions = [];
      else throw new RetryLaterError('the tool registry is unavailable; the run waits for tool definitions', 500, { cause: e });
    }
    const rec = versions.find((v) => v.version === t.version);
    const desc: ToolDescription = rec ? { ...(rec.description ? { description: rec.description } : {}), inputSchema: rec.inputSchema } : {};
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, desc);
    return desc;
  }
}

import { readFileSync } from 'node:fs';
import type { ReplicaSpec, SimulatorSettings } from '#libs/config';
import { parseScript, startReplicaSimulator, type ReplicaSimulator, type ScriptRule } from './simulator/index.js';

/** The models the simulators serve and the default model routing uses with them. */
export const SIM_FRONTIER_MODEL = 'sim-70b';
export const SIM_CHEAP_MODEL = 'sim-8b';

export interface Simulators {
  readonly specs: ReplicaSpec[];
  readonly sims: ReplicaSimulator[];
  close(): Promise<void>;
}

/**
 * Starts `count` replica simulators in this process, on free loopback ports: what the router
 * routes to when no real model is configured (AGENTMESH_REPLICAS unset). They model a GPU
 * replica's prefix KV cache and timing; their replies are filler text, not a model's.
 */
export async function startSimulators(s: SimulatorSettings): Promise<Simulators> {
  const params = s.zeroLatency ? { prefillMsPerToken: 0, prefillOverheadMs: 0, decodeMsPerStep: 0, decodeMsPerSeq: 0 } : {};
  const script = s.script === undefined ? undefined : loadScript(s.script);
  const sims: ReplicaSimulator[] = [];
  try {
    for (let i = 0; i < s.count; i++) {
      sims.push(await startReplicaSimulator({ replicaId: `sim-${i}`, model: SIM_FRONTIER_MODEL, host: '127.0.0.1', port: 0, timeScale: s.timeScale, params, script }));
    }
  } catch (e) {
    await Promise.all(sims.map((x) => x.close()));
    throw e;
  }
  const specs: ReplicaSpec[] = sims.map((sim) => ({
    id: sim.replicaId,
    url: sim.url,
    kind: 'openai',
    models: [SIM_FRONTIER_MODEL, SIM_CHEAP_MODEL],
    capacity: s.capacity,
    weight: 1,
    health: '/health',
  }));
  return { specs, sims, close: async () => void (await Promise.all(sims.map((x) => x.close()))) };
}

/** Reads AGENTMESH_SIM_SCRIPT's file: scripted (tool-calling) replies for demos and tests. */
function loadScript(path: string): ScriptRule[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`AGENTMESH_SIM_SCRIPT: cannot read ${path} as JSON (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  return parseScript(raw);
}

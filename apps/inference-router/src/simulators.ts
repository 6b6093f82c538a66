import type { ReplicaSpec, SimulatorSettings } from '#libs/config';
import { startReplicaSimulator, type ReplicaSimulator } from './simulator/index.js';

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
  const sims: ReplicaSimulator[] = [];
  try {
    for (let i = 0; i < s.count; i++) {
      sims.push(await startReplicaSimulator({ replicaId: `sim-${i}`, model: SIM_FRONTIER_MODEL, host: '127.0.0.1', port: 0, timeScale: s.timeScale, params }));
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

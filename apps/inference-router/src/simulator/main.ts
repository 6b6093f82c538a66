/**
 * Runs one simulated GPU replica standalone:
 *   node dist/apps/inference-router/src/simulator/main.js --port 9001 --replica-id r1 --time-scale 0.1 \
 *     [--model sim-70b] [--prefill-ms-per-token 0.2] [--decode-ms-per-step 28] [--max-concurrency 32] \
 *     [--kv-cache-tokens 262144] [--block-size 16] [--max-queue N] [--script script.json]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseScript } from './script.js';
import { startReplicaSimulator } from './server.js';
import type { ReplicaParams } from './engine.js';

const NUMERIC: Record<string, keyof ReplicaParams> = {
  'prefill-ms-per-token': 'prefillMsPerToken',
  'prefill-overhead-ms': 'prefillOverheadMs',
  'decode-ms-per-step': 'decodeMsPerStep',
  'decode-ms-per-seq': 'decodeMsPerSeq',
  'max-concurrency': 'maxConcurrency',
  'kv-cache-tokens': 'kvCacheTokens',
  'block-size': 'blockSize',
};

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new RangeError(`--${name} must be a number, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'replica-id': { type: 'string' },
      model: { type: 'string' },
      'time-scale': { type: 'string' },
      'chars-per-token': { type: 'string' },
      'default-output-tokens': { type: 'string' },
      'max-queue': { type: 'string' },
      script: { type: 'string' },
      ...Object.fromEntries(Object.keys(NUMERIC).map((k) => [k, { type: 'string' as const }])),
    },
    strict: true,
  });
  const params: Partial<Record<keyof ReplicaParams, number>> = {};
  for (const [flag, key] of Object.entries(NUMERIC)) {
    const raw: unknown = (values as Record<string, unknown>)[flag];
    const v = num(flag, typeof raw === 'string' ? raw : undefined);
    if (v !== undefined) params[key] = v;
  }
  const sim = await startReplicaSimulator({
    port: num('port', values.port),
    host: values.host,
    replicaId: values['replica-id'],
    model: values.model,
    timeScale: num('time-scale', values['time-scale']),
    charsPerToken: num('chars-per-token', values['chars-per-token']),
    defaultOutputTokens: num('default-output-tokens', values['default-output-tokens']),
    maxQueue: num('max-queue', values['max-queue']),
    script: values.script === undefined ? undefined : parseScript(JSON.parse(readFileSync(values.script, 'utf8'))),
    params,
  });
  process.stdout.write(`${JSON.stringify({ msg: 'replica simulator listening', url: sim.url, replicaId: sim.replicaId })}\n`);
  const stop = (): void => {
    void sim.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

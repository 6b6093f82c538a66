#!/usr/bin/env node
// `npm start`: installs what is missing, builds, starts the embedded mesh (nats-server with
// JetStream + the six services), seeds the demo tenant, runs one demo run, and waits for Ctrl-C.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startMesh, seedDemo, client, followEvents, DEMO_REACT_INPUT, DEMO_SIM_SCRIPT } from './mesh.mjs';

const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) { process.stderr.write(`\n${cmd} ${args.join(' ')} failed (${r.status})\n`); process.exit(1); }
};
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

// 1. npm packages
if (!existsSync(join(ROOT, 'node_modules/.package-lock.json'))) {
  console.log('installing npm packages (npm ci, from the lock)...');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

// 2. nats-server
if (!has('nats-server') && !process.env.NATS_SERVER_BIN) {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (root && has('apt-get')) {
    console.log('installing nats-server from Debian (apt-get install nats-server)...');
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', 'nats-server']);
  } else {
    console.error('nats-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install nats-server;\n'
      + 'elsewhere: https://docs.nats.io/running-a-nats-service/introduction/installation) or set NATS_SERVER_BIN.');
    process.exit(1);
  }
}

// 3. build when a source is newer than the build
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}
const marker = join(ROOT, 'dist/apps/gateway/src/main.js');
if (!existsSync(marker) || Math.max(newest(join(ROOT, 'apps')), newest(join(ROOT, 'libs'))) > statSync(marker).mtimeMs) {
  console.log('building (tsc)...');
  run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json']);
}

// 4. the mesh. Without AGENTMESH_REPLICAS no real model is configured: the inference-router starts
// replica simulators, scripted for the react demo.
const simulated = !process.env.AGENTMESH_REPLICAS;
let mesh;
try {
  mesh = await startMesh({ dataDir: process.env.AGENTMESH_DATA_DIR, env: simulated ? { AGENTMESH_SIM_SCRIPT: process.env.AGENTMESH_SIM_SCRIPT ?? DEMO_SIM_SCRIPT } : {} });
} catch (e) {
  console.error(`\nthe mesh did not start: ${e.message}`);
  process.exit(1);
}
let stopping = false;
const stop = async (sig) => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${sig}: stopping the services and nats-server...`);
  await mesh.stop();
  console.log('stopped.');
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));

// 5. the demo
const demo = await seedDemo(mesh);
const api = client(mesh.gatewayUrl, demo.key);
const started = await api('POST', '/v1/tenants/demo/runs', { agent: 'hello', input: { name: 'Ada' } }, { 'idempotency-key': `npm-start-${Date.now()}` });
if (started.status !== 201) {
  console.error(`the demo run did not start: ${started.status} ${JSON.stringify(started.body)}`);
} else {
  console.log(`\ndemo run ${started.body.id} (agent hello, a 2-step graph of builtin tools):`);
  await followEvents(mesh.gatewayUrl, demo.key, `/v1/tenants/demo/runs/${started.body.id}/events`, (e) => {
    const d = e.data;
    const detail = e.event === 'tool.completed' ? ` -> ${JSON.stringify(d.data.result)}` : e.event === 'run.completed' ? ` output ${JSON.stringify(d.data.output)}` : e.event === 'step.started' ? ` ${d.data.tool} ${JSON.stringify(d.data.args)}` : '';
    console.log(`  #${e.id} ${e.event}${detail}`);
  });
}

// the react demo: an LLM tool-calling loop through the inference-router
const reactRun = await api('POST', '/v1/tenants/demo/runs', { agent: 'assistant', input: DEMO_REACT_INPUT }, { 'idempotency-key': `npm-start-react-${Date.now()}` });
if (reactRun.status !== 201) {
  console.error(`the react demo run did not start: ${reactRun.status} ${JSON.stringify(reactRun.body)}`);
} else {
  console.log(`\ndemo run ${reactRun.body.id} (agent assistant, the react planner: model -> tool -> model):`);
  if (simulated) console.log('  (no real model is configured (AGENTMESH_REPLICAS is unset): the replies come from the replica simulator, scripted)');
  let streamed = '';
  await followEvents(mesh.gatewayUrl, demo.key, `/v1/tenants/demo/runs/${reactRun.body.id}/events`, (e) => {
    const d = e.data;
    if (e.event === 'llm.delta') { streamed += d.data.text; return; }
    if (streamed) { console.log(`  (streamed as llm.delta: ${JSON.stringify(streamed)})`); streamed = ''; }
    const detail = e.event === 'llm.completed' ? ` ${d.data.model}@${d.data.replica}: ${JSON.stringify(d.data.message)}`
      : e.event === 'tool.completed' ? ` -> ${JSON.stringify(d.data.result)}`
      : e.event === 'run.completed' ? ` output ${JSON.stringify(d.data.output)}`
      : e.event === 'run.failed' ? ` ${JSON.stringify(d.data.error)}` : '';
    console.log(`  #${e.id} ${e.event}${detail}`);
  });
}

const rel = (p) => p.startsWith(ROOT) ? p.slice(ROOT.length + 1) : p;
console.log(`
agentmesh is running: nats-server (JetStream) + gateway, orchestrator, tool-runner,
credential-broker, cost-governor, inference-router.

  REST gateway  ${mesh.gatewayUrl}/v1      metrics  ${mesh.gatewayUrl}/metrics
  gRPC          127.0.0.1:${mesh.grpcPort} (agentmesh.v1, health + reflection: grpcurl -plaintext 127.0.0.1:${mesh.grpcPort} list)
  NATS          ${mesh.natsUrl}    (nats stream view AGENTMESH_JOURNAL --server ${mesh.natsUrl})
  admin key     ${rel(join(mesh.dataDir, 'admin.key'))}     demo tenant key  ${rel(demo.keyFile)}
  logs          ${rel(join(mesh.dataDir, 'logs'))}/

Start a run of the demo agent and follow its events:

  RUN=$(curl -s -X POST ${mesh.gatewayUrl}/v1/tenants/demo/runs -H "Authorization: Bearer $(cat ${rel(demo.keyFile)})" -H 'Content-Type: application/json' -d '{"agent":"hello","input":{"name":"Grace"}}' | node -pe 'JSON.parse(require("fs").readFileSync(0,"utf8")).id') && curl -sN ${mesh.gatewayUrl}/v1/tenants/demo/runs/$RUN/events -H "Authorization: Bearer $(cat ${rel(demo.keyFile)})"

The react demo agent (an LLM tool-calling loop through the inference-router):

  RUN=$(curl -s -X POST ${mesh.gatewayUrl}/v1/tenants/demo/runs -H "Authorization: Bearer $(cat ${rel(demo.keyFile)})" -H 'Content-Type: application/json' -d '{"agent":"assistant","input":"${DEMO_REACT_INPUT}"}' | node -pe 'JSON.parse(require("fs").readFileSync(0,"utf8")).id') && curl -sN ${mesh.gatewayUrl}/v1/tenants/demo/runs/$RUN/events -H "Authorization: Bearer $(cat ${rel(demo.keyFile)})"
${simulated ? `
  No real model is configured (AGENTMESH_REPLICAS is unset), so the inference-router answers from
  its replica simulators: scripted replies for this demo (${rel(DEMO_SIM_SCRIPT)}), filler text for
  anything else. Set AGENTMESH_REPLICAS (see README) to route to vLLM, SGLang, OpenAI or Anthropic.
` : ''}
Ctrl-C stops everything.`);
await new Promise(() => {});

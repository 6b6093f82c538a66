// Starts the embedded agentmesh: a local nats-server with JetStream (data under the data folder)
// and the six services as separate processes. Used by `npm start`, the e2e tests and the bench.
// Node built-ins only, so it runs before anything else is installed.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Default ports; they match libs/config/src/services.ts (a test checks it). */
export const DEFAULT_PORTS = {
  gateway: 8080, orchestrator: 8081, 'tool-runner': 8082, 'credential-broker': 8083, 'cost-governor': 8084, 'inference-router': 8085,
};
export const SERVICES = Object.keys(DEFAULT_PORTS);
const ENV_PORT = (svc) => `${svc.toUpperCase().replace(/-/g, '_')}_PORT`;

/**
 * A free TCP port on loopback for a service to listen on later. Chosen below Linux's ephemeral
 * range (32768–60999): a port taken from that range by binding port 0 can be handed out again to
 * anything else that binds port 0 or connects out before the service gets to listen on it (seen:
 * the router's in-process simulators took the router's own port). Checked by binding it, and
 * never handed out twice by this process.
 */
const handedOut = new Set();
export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (handedOut.has(port)) continue;
    const ok = await new Promise((res) => {
      const s = createServer();
      s.unref();
      s.once('error', () => res(false));
      s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
    });
    if (ok) { handedOut.add(port); return port; }
  }
  throw new Error('no free port found in 20000-31999');
}

export async function portInUse(port) {
  return new Promise((res) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}

async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tail(file, n = 15) {
  try { return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join('\n'); } catch { return ''; }
}

/**
 * @param {object} [opts]
 * @param {string} [opts.dataDir] data folder (default ./data)
 * @param {boolean} [opts.freePorts] use free ports instead of the documented defaults (tests)
 * @param {Record<string,string>} [opts.env] extra environment for every service
 * @param {boolean} [opts.quiet] do not print progress
 */
export async function startMesh(opts = {}) {
  const dataDir = resolve(opts.dataDir ?? join(ROOT, 'data'));
  const logDir = join(dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const say = opts.quiet ? () => {} : (m) => process.stdout.write(`${m}\n`);
  const children = new Map();

  // ---- nats-server
  let natsPort = opts.freePorts ? await freePort() : Number(process.env.AGENTMESH_NATS_PORT ?? 4222);
  if (!opts.freePorts && (await portInUse(natsPort))) {
    const alt = await freePort();
    say(`port ${natsPort} is taken; the embedded nats-server uses ${alt}`);
    natsPort = alt;
  }
  const natsConf = join(dataDir, 'nats.conf');
  writeFileSync(natsConf, [
    `listen: 127.0.0.1:${natsPort}`,
    `server_name: agentmesh-embedded`,
    `jetstream { store_dir: "${join(dataDir, 'nats')}" }`,
    '',
  ].join('\n'));
  const natsUrl = `nats://127.0.0.1:${natsPort}`;
  let nats;
  const startNats = async () => {
    const log = createWriteStream(join(logDir, 'nats-server.log'), { flags: 'a' });
    nats = spawn(process.env.NATS_SERVER_BIN ?? 'nats-server', ['-c', natsConf], { stdio: ['ignore', 'pipe', 'pipe'] });
    nats.stdout.pipe(log); nats.stderr.pipe(log);
    const failed = new Promise((_, rej) => {
      nats.once('error', (e) => rej(new Error(`could not start nats-server: ${e.message}`)));
      nats.once('exit', (code) => rej(new Error(`nats-server exited (${code}):\n${tail(join(logDir, 'nats-server.log'))}`)));
    });
    failed.catch(() => {});
    await Promise.race([waitFor(() => portInUse(natsPort), 15_000, 'nats-server'), failed]);
  };
  await startNats();
  say(`nats-server (JetStream) on ${natsUrl}, data in ${join(dataDir, 'nats')}`);

  // ---- services
  const ports = {};
  for (const svc of SERVICES) ports[svc] = opts.freePorts ? await freePort() : DEFAULT_PORTS[svc];
  const grpcPort = opts.freePorts ? await freePort() : Number(process.env.GRPC_PORT ?? 50051);
  if (!opts.freePorts) {
    for (const [svc, port] of Object.entries(ports)) {
      if (await portInUse(port)) throw new Error(`port ${port} (${svc}) is in use; stop what uses it or set ${ENV_PORT(svc)}`);
    }
  }
  const baseEnv = {
    ...process.env,
    NATS_URL: natsUrl,
    AGENTMESH_DATA_DIR: dataDir,
    GRPC_PORT: String(grpcPort),
    ...Object.fromEntries(SERVICES.map((s) => [ENV_PORT(s), String(ports[s])])),
    ...(opts.env ?? {}),
  };

  const spawnService = async (svc) => {
    const logFile = join(logDir, `${svc}.log`);
    const log = createWriteStream(logFile, { flags: 'a' });
    const nodeArgs = (baseEnv.AGENTMESH_NODE_ARGS ?? '').split(' ').filter(Boolean); // e.g. --cpu-prof for profiling
    const child = spawn(process.execPath, ['--enable-source-maps', ...nodeArgs, join(ROOT, 'dist/apps', svc, 'src/main.js')], {
      env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT,
    });
    child.stdout.pipe(log); child.stderr.pipe(log);
    const exited = new Promise((resolveExit) => child.once('exit', (code, signal) => resolveExit({ code, signal })));
    const entry = { child, exited, logFile, port: ports[svc], url: `http://127.0.0.1:${ports[svc]}` };
    children.set(svc, entry);
    const early = exited.then(({ code, signal }) => { throw new Error(`${svc} exited (${code ?? signal}) before it was ready:\n${tail(logFile)}`); });
    early.catch(() => {});
    await Promise.race([
      waitFor(async () => {
        try { return (await fetch(`${entry.url}/readyz`)).status === 200; } catch { return false; }
      }, 30_000, `${svc} to be ready`),
      early,
    ]);
    return entry;
  };

  try {
    await Promise.all(SERVICES.map(spawnService));
  } catch (e) {
    for (const { child } of children.values()) child.kill('SIGKILL');
    nats.kill('SIGKILL');
    throw e;
  }
  say(`services ready: ${SERVICES.map((s) => `${s}:${ports[s]}`).join(' ')} (logs in ${logDir})`);

  const adminKeyFile = join(dataDir, 'admin.key');
  const adminKey = opts.env?.AGENTMESH_ADMIN_KEY ?? process.env.AGENTMESH_ADMIN_KEY ?? readFileSync(adminKeyFile, 'utf8').trim();

  const stopService = async (svc, signal = 'SIGTERM') => {
    const e = children.get(svc);
    if (!e || e.child.exitCode !== null || e.child.signalCode !== null) return;
    e.child.kill(signal);
    await e.exited;
  };

  return {
    dataDir, natsUrl, natsPort, grpcPort, ports, adminKey,
    gatewayUrl: `http://127.0.0.1:${ports.gateway}`,
    logFile: (svc) => children.get(svc)?.logFile,
    pid: (svc) => (svc === 'nats-server' ? nats.pid : children.get(svc)?.child.pid),
    /** Sends a signal (SIGKILL to crash it) and waits for the process to exit. */
    kill: (svc, signal = 'SIGKILL') => stopService(svc, signal),
    /** Starts a stopped service again and waits until it is ready. */
    restart: async (svc) => { await stopService(svc); await spawnService(svc); },
    killNats: async () => { nats.kill('SIGKILL'); await new Promise((r) => nats.once('exit', r)); },
    restartNats: async () => { if (nats.exitCode === null && nats.signalCode === null) { nats.kill('SIGTERM'); await new Promise((r) => nats.once('exit', r)); } await startNats(); },
    async stop() {
      await Promise.all(SERVICES.map((s) => stopService(s, 'SIGTERM')));
      if (nats.exitCode === null && nats.signalCode === null) {
        nats.kill('SIGTERM');
        await new Promise((r) => nats.once('exit', r));
      }
    },
  };
}

/** A small REST client for the seeding and the scripts. */
export function client(baseUrl, key) {
  return async (method, path, body, headers = {}) => {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    return { status: res.status, body: json, headers: res.headers };
  };
}

export const DEMO_TOOLS = {
  echo: { version: '1', description: 'returns its arguments', riskTier: 'read', inputSchema: { type: 'object' }, transport: { kind: 'builtin', name: 'echo' } },
  transform: {
    version: '1', description: 'transforms text', riskTier: 'read',
    inputSchema: { type: 'object', required: ['text', 'op'], properties: { text: { type: 'string' }, op: { enum: ['upper', 'lower', 'reverse', 'trim', 'length'] } } },
    transport: { kind: 'builtin', name: 'transform' },
  },
};
export const DEMO_AGENT = {
  version: '1', planner: 'graph', tools: ['echo', 'transform'], limits: { maxSteps: 10 },
  steps: [
    { id: 'greet', tool: 'echo', args: { text: 'Hello, {{input.name}}!' } },
    { id: 'shout', tool: 'transform', args: { text: '{{steps.greet.result.text}}', op: 'upper' } },
  ],
  output: { greeting: '{{steps.shout.result.text}}' },
};

/**
 * The `assistant` react agent: an LLM tool-calling loop through the inference-router. With no real
 * model configured (AGENTMESH_REPLICAS unset) the router's replica simulators answer, scripted by
 * DEMO_SIM_SCRIPT to call the transform tool for DEMO_REACT_INPUT and then answer.
 */
export const DEMO_REACT_AGENT = {
  version: '1', planner: 'react', tools: ['transform'], limits: { maxSteps: 6 },
  instructions: 'You are a helpful assistant. Use the transform tool to change text, then say what it returned.',
};
export const DEMO_REACT_INPUT = 'Make this loud: hello from agentmesh';
/** The simulators' script for the demo (AGENTMESH_SIM_SCRIPT), used when no real model is configured. */
export const DEMO_SIM_SCRIPT = join(ROOT, 'scripts/demo-sim-script.json');

/** Seeds the `demo` tenant with an owner key (kept in data/demo.key), the `hello` graph agent and the `assistant` react agent. */
export async function seedDemo(mesh) {
  const admin = client(mesh.gatewayUrl, mesh.adminKey);
  const t = await admin('POST', '/v1/tenants', { id: 'demo', name: 'Demo tenant' });
  if (t.status !== 201 && t.status !== 409) throw new Error(`creating the demo tenant: ${t.status} ${JSON.stringify(t.body)}`);
  const keyFile = join(mesh.dataDir, 'demo.key');
  let key = existsSync(keyFile) ? readFileSync(keyFile, 'utf8').trim() : '';
  if (!key || (await client(mesh.gatewayUrl, key)('GET', '/v1/tenants/demo/runs?limit=1')).status !== 200) {
    const k = await admin('POST', '/v1/tenants/demo/api-keys', { name: 'demo owner', roles: ['owner'] });
    if (k.status !== 201) throw new Error(`issuing the demo key: ${k.status} ${JSON.stringify(k.body)}`);
    key = k.body.key;
    writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
  }
  const api = client(mesh.gatewayUrl, key);
  for (const [name, def] of Object.entries(DEMO_TOOLS)) {
    const r = await api('PUT', `/v1/tenants/demo/tools/${name}`, def);
    if (![200, 201, 409].includes(r.status)) throw new Error(`registering tool ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  const a = await api('PUT', '/v1/tenants/demo/agents/hello', DEMO_AGENT);
  if (![200, 201, 409].includes(a.status)) throw new Error(`defining agent hello: ${a.status} ${JSON.stringify(a.body)}`);
  const r = await api('PUT', '/v1/tenants/demo/agents/assistant', DEMO_REACT_AGENT);
  if (![200, 201, 409].includes(r.status)) throw new Error(`defining agent assistant: ${r.status} ${JSON.stringify(r.body)}`);
  return { tenant: 'demo', key, keyFile };
}

/** Reads a run's SSE stream until it closes; calls onEvent for each event. */
export async function followEvents(baseUrl, key, path, onEvent, { lastEventId, signal } = {}) {
  const res = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${key}`, ...(lastEventId !== undefined ? { 'last-event-id': String(lastEventId) } : {}) }, signal });
  if (res.status !== 200) throw new Error(`events: HTTP ${res.status} ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = {};
      for (const line of frame.split('\n')) {
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':');
        if (c < 0) continue;
        ev[line.slice(0, c)] = line.slice(c + 1).replace(/^ /, '');
      }
      if (ev.data !== undefined) onEvent({ id: ev.id, event: ev.event, data: JSON.parse(ev.data) });
    }
  }
}

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A free TCP port on loopback for a server to listen on later, chosen below Linux's ephemeral
 * range (32768–60999) so that nothing binding port 0 or connecting out meanwhile can take it;
 * checked by binding it, and never handed out twice by this process.
 */
const handedOut = new Set<number>();
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (handedOut.has(port)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) { handedOut.add(port); return port; }
  }
  throw new Error('no free port found in 20000-31999');
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** SIGKILLs the server (the store stays), as a crash would. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and store directory. */
  restart(): Promise<void>;
  /** Stops the server and removes the store directory. */
  stop(): Promise<void>;
}

/**
 * Starts a real `nats-server` with JetStream on a free loopback port and a temporary store
 * directory, the way nats.js' own tests do. The binary is `nats-server` on PATH unless
 * NATS_SERVER_BIN names another.
 */
export async function startNatsServer(opts: { storeDir?: string } = {}): Promise<NatsServerHandle> {
  const bin = process.env.NATS_SERVER_BIN ?? 'nats-server';
  const port = await freePort();
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'agentmesh-nats-'));
  const conf = join(storeDir, 'nats.conf');
  writeFileSync(
    conf,
    `listen: 127.0.0.1:${port}\nmax_payload: 8MB\njetstream { store_dir: "${join(storeDir, 'js')}", max_memory_store: 256MB, max_file_store: 4GB }\n`,
  );
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-4000); });
    const exited = new Promise<never>((_, reject) =>
      child!.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${stderr}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port, 10_000), exited]);
  };
  const killChild = async (signal: NodeJS.Signals) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill(signal); });
  };
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    kill: () => killChild('SIGKILL'),
    restart: async () => { await killChild('SIGTERM'); await launch(); },
    stop: async () => {
      await killChild('SIGTERM');
      if (!opts.storeDir) rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

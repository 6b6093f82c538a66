import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { freePort } from '#libs/testing';

/**
 * Test launcher of jongodb, an in-memory MongoDB-wire-compatible server shipped as a native binary
 * in the npm package `@jongodb/memory-server-bin-linux-x64-gnu` (a devDependency: no download at
 * run time). It speaks enough of the protocol for the mongoose repositories (see
 * libs/store/README.md for what it covers); it keeps data in memory only, so a restart empties it.
 */
export interface MongoServerHandle {
  readonly uri: string;
  readonly port: number;
  /** SIGKILLs the server (an outage). */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: jongodb keeps nothing). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const PKG = '@jongodb/memory-server-bin-linux-x64-gnu';

/** The binary, or why there is none. */
export function jongodbBinary(): { bin: string } | { missing: string } {
  if (process.platform !== 'linux' || process.arch !== 'x64') return { missing: `${PKG} ships linux-x64 only (this is ${process.platform}-${process.arch})` };
  try {
    const req = createRequire(join(process.cwd(), 'package.json'));
    const bin = join(dirname(req.resolve(`${PKG}/package.json`)), 'bin', 'jongodb');
    return existsSync(bin) ? { bin } : { missing: `${bin} is missing` };
  } catch {
    return { missing: `${PKG} is not installed (npm install)` };
  }
}

export async function startJongodb(): Promise<MongoServerHandle> {
  const found = jongodbBinary();
  if ('missing' in found) throw new Error(found.missing);
  const port = await freePort();
  let child: ChildProcess | undefined;
  const launch = async () => {
    const c = spawn(found.bin, ['--host=127.0.0.1', `--port=${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`jongodb did not start within 15 s: ${out}`)), 15_000);
      const onData = (b: Buffer) => {
        out = (out + b.toString()).slice(-4000);
        if (out.includes('JONGODB_URI=')) { clearTimeout(timer); resolve(); }
      };
      c.stdout?.on('data', onData);
      c.stderr?.on('data', (b: Buffer) => { out = (out + b.toString()).slice(-4000); });
      c.once('exit', (code) => { clearTimeout(timer); reject(new Error(`jongodb exited (${code}): ${out}`)); });
    });
    c.stdout?.resume();
    c.stderr?.resume();
  };
  const killChild = async (signal: NodeJS.Signals) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill(signal); });
  };
  await launch();
  return {
    uri: `mongodb://127.0.0.1:${port}`,
    port,
    kill: () => killChild('SIGKILL'),
    restart: async () => { await killChild('SIGTERM'); await launch(); },
    stop: () => killChild('SIGTERM'),
  };
}

#!/usr/bin/env node
// Rotates the credential broker's master key (the key-encryption key that wraps every tenant's
// data key), online: no downtime, nothing re-encrypted, nothing lost.
//
//   npx tsc -p tsconfig.build.json                 # once: the script runs the built code in dist/
//   node scripts/rotate-master-key.mjs             # add a key, make it active, re-wrap every data key
//   node scripts/rotate-master-key.mjs --retire    # ... and then remove the old key(s)
//   node scripts/rotate-master-key.mjs --status    # only show which master keys wrap the data keys
//
// Environment (read through libs/config, as in every service): NATS_URL, AGENTMESH_DATA_DIR.
//
// Keys in the data folder (the embedded default, `<data>/master.keys`, mode 0600): the script adds
// a fresh 256-bit key to the file and makes it active, then asks the broker (RPC
// credentials.rotate) to re-read the file and re-wrap every tenant data key under the new key.
// Secrets are not re-encrypted (their data keys do not change) and every key in the file keeps
// unwrapping what it wrapped, so tool calls in flight are not disturbed. With --retire, once the
// broker reports every data key under the new key, the old keys are removed from the file (the
// broker notices the file change) and the result is checked again; if a data key appeared under an
// old key meanwhile, the old keys are put back and re-wrapping runs again.
//
// Keys in the environment (AGENTMESH_MASTER_KEYS / AGENTMESH_MASTER_KEY_ACTIVE, production): the
// script cannot change the brokers' environment. First add the new key to AGENTMESH_MASTER_KEYS,
// point AGENTMESH_MASTER_KEY_ACTIVE at it and roll the broker replicas one at a time (the others
// keep serving); then run this script, which re-wraps every data key under the active key and
// prints the count per master key. Remove the old key from AGENTMESH_MASTER_KEYS at the next
// rollout once the report shows no data key under it.
//
// Prints one JSON line (ids and counts, never key material); exits 1 when anything failed.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const distLib = (lib) => join(ROOT, 'dist', 'libs', lib, 'src', 'index.js');
const keyFilesModule = join(ROOT, 'dist', 'apps', 'credential-broker', 'src', 'keys', 'key-files.js');
if (!existsSync(distLib('messaging')) || !existsSync(keyFilesModule)) {
  console.error('dist/ is missing: run `npx tsc -p tsconfig.build.json` first');
  process.exit(2);
}
const args = new Set(process.argv.slice(2));
for (const a of args) {
  if (!['--retire', '--status', '--help', '-h'].includes(a)) {
    console.error(`unknown option ${a}; usage: node scripts/rotate-master-key.mjs [--retire | --status]`);
    process.exit(2);
  }
}
if (args.has('--help') || args.has('-h')) {
  console.log('usage: node scripts/rotate-master-key.mjs [--retire | --status]   (see the comment at the top of the script)');
  process.exit(0);
}

const { loadConfig } = await import(distLib('config'));
const { connectNats, RpcClient } = await import(distLib('messaging'));
const { MASTER_KEYS_FILE, addMasterKey, retireMasterKeys } = await import(keyFilesModule);

const config = loadConfig('credential-broker');
const file = join(config.dataDir, MASTER_KEYS_FILE);
const nc = await connectNats(config.natsUrl, 'rotate-master-key');
const rpc = new RpcClient(nc, 60_000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const onlyActive = (s) => Object.keys(s.dataKeys).every((id) => id === s.activeMasterKeyId);
const out = (o) => console.log(JSON.stringify(o));

try {
  const before = await rpc.call('credentials.keys', {});
  if (args.has('--status')) {
    out({ status: before });
  } else if (config.masterKeys !== undefined || !existsSync(file)) {
    // keys live in the brokers' environment: re-wrap under the active key only
    const report = await rpc.call('credentials.rotate', {});
    out({ mode: 'environment', before, report });
    if (report.failed.length || !onlyActive(report)) process.exitCode = 1;
  } else {
    const backup = readFileSync(file, 'utf8');
    const { id, previous } = addMasterKey(file);
    let report = await rpc.call('credentials.rotate', { reload: true });
    if (report.activeMasterKeyId !== id) {
      // the broker does not take its keys from this file: leave everything as it was
      const tmp = `${file}.restore.tmp`;
      writeFileSync(tmp, backup, { mode: 0o600 });
      renameSync(tmp, file);
      throw new Error(`the broker did not take up the new key (its active key is ${report.activeMasterKeyId}); is AGENTMESH_MASTER_KEYS set for it? nothing was changed`);
    }
    let retired = [];
    if (args.has('--retire')) {
      for (let attempt = 1; attempt <= 3 && retired.length === 0; attempt++) {
        await sleep(500); // replicas pick the new file up on their next call; let any in-flight key creation land
        report = await rpc.call('credentials.rotate', {});
        if (report.failed.length) break;
        if (!onlyActive(report)) continue;
        const oldContent = readFileSync(file, 'utf8');
        retired = retireMasterKeys(file);
        const after = await rpc.call('credentials.rotate', { reload: true });
        if (onlyActive(after) && after.failed.length === 0) { report = after; break; }
        // a data key appeared under a retired key meanwhile: put the keys back and go round again
        const tmp = `${file}.restore.tmp`;
        writeFileSync(tmp, oldContent, { mode: 0o600 });
        renameSync(tmp, file);
        retired = [];
        report = await rpc.call('credentials.rotate', { reload: true });
      }
      if (retired.length === 0) {
        console.error('the old key was kept: not every data key could be moved to the new key yet; run the script again');
        process.exitCode = 1;
      }
    }
    out({ mode: 'data-folder', file, previous, active: id, retired, report });
    if (report.failed.length || !onlyActive(report)) process.exitCode = 1;
  }
} catch (err) {
  console.error(`rotation failed: ${err?.message ?? err}`);
  process.exitCode = 1;
} finally {
  await nc.close();
}

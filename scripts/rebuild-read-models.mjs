#!/usr/bin/env node
// Rebuilds the read models from the journal:
//
//   npx tsc -p tsconfig.build.json          # once: the script runs the built code in dist/
//   NATS_URL=nats://127.0.0.1:4222 [MONGODB_URI=mongodb://...] node scripts/rebuild-read-models.mjs
//
// Connects to NATS_URL, opens the configured store (MongoDB when MONGODB_URI is set, JetStream KV
// otherwise: the same selection as the services), then rebuilds each read model:
//   run-index:    resets its checkpoint and replays AGENTMESH_JOURNAL (`run.>`) from its first event,
//                 rewriting every run index row;
//   audit-search: resets its checkpoint and applies every record of AGENTMESH_AUDIT again (entries are
//                 keyed by record id, so present ones stay and missing ones come back).
// Safe while the mesh runs: rows only converge to the streams, and the projectors in the services
// resume from the checkpoints this leaves. Prints one JSON line per read model; exits non-zero on
// failure.
// Environment is read through libs/config (loadConfig), as in every service.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (lib) => join(ROOT, 'dist', 'libs', lib, 'src', 'index.js');
if (!existsSync(dist('store'))) {
  console.error('dist/ is missing: run `npx tsc -p tsconfig.build.json` first');
  process.exit(2);
}
const { loadConfig } = await import(dist('config'));
const { connectNats } = await import(dist('messaging'));
const { createRepositories, RunIndexProjector } = await import(dist('store'));
const { AuditProjector } = await import(join(ROOT, 'dist', 'apps', 'gateway', 'src', 'audit', 'audit-projector.js'));

const config = loadConfig('orchestrator');
const started = Date.now();
const nc = await connectNats(config.natsUrl, 'rebuild-read-models');
let repos;
try {
  repos = await createRepositories(config, nc);
  const logger = { info: () => undefined, warn: (o, m) => console.warn(m, o), error: (o, m) => console.error(m, o) };
  const progress = setInterval(() => process.stderr.write('.'), 2000);
  try {
    const report = await new RunIndexProjector(nc, repos, { logger }).rebuild();
    console.log(JSON.stringify({ readModel: 'run-index', store: repos.backend, ...report, ms: Date.now() - started }));
    const auditStarted = Date.now();
    const audit = await new AuditProjector(nc, repos, { logger }).rebuild();
    console.log(JSON.stringify({ readModel: 'audit-search', store: repos.backend, ...audit, ms: Date.now() - auditStarted }));
  } finally {
    clearInterval(progress);
  }
} catch (err) {
  console.error(`rebuild failed: ${err?.message ?? err}`);
  process.exitCode = 1;
} finally {
  await repos?.close();
  await nc.close();
}

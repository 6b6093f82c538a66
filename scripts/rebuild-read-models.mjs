#!/usr/bin/env node
// Rebuilds the read models from the journal:
//
//   npx tsc -p tsconfig.build.json          # once: the script runs the built code in dist/
//   NATS_URL=nats://127.0.0.1:4222 [MONGODB_URI=mongodb://...] node scripts/rebuild-read-models.mjs
//
// Connects to NATS_URL, opens the configured store (MongoDB when MONGODB_URI is set, JetStream KV
// otherwise: the same selection as the services), resets the run index projector's checkpoint and
// replays AGENTMESH_JOURNAL (`run.>`) from its first event, rewriting every run index row. Safe while
// the mesh runs: rows only converge to the journal, and the projector in the services resumes from the
// checkpoint this leaves. Prints one JSON line with what it did; exits non-zero on failure.
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

const config = loadConfig('orchestrator');
const started = Date.now();
const nc = await connectNats(config.natsUrl, 'rebuild-read-models');
let repos;
try {
  repos = await createRepositories(config, nc);
  const progress = setInterval(() => process.stderr.write('.'), 2000);
  const projector = new RunIndexProjector(nc, repos, {
    logger: { info: () => undefined, warn: (o, m) => console.warn(m, o), error: (o, m) => console.error(m, o) },
  });
  const report = await projector.rebuild().finally(() => clearInterval(progress));
  console.log(JSON.stringify({ readModel: 'run-index', store: repos.backend, ...report, ms: Date.now() - started }));
} catch (err) {
  console.error(`rebuild failed: ${err?.message ?? err}`);
  process.exitCode = 1;
} finally {
  await repos?.close();
  await nc.close();
}

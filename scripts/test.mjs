#!/usr/bin/env node
// `npm test`: builds, then runs unit + integration tests (real nats-server on free ports), then
// the e2e tests (the whole mesh as processes) one file at a time, and prints one summary line.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './mesh.mjs';

const out = join(ROOT, '.test-results');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --experimental-vm-modules`.trim() };
const jest = join(ROOT, 'node_modules/jest/bin/jest.js');
const extra = process.argv.slice(2);

const build = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
if (build.status !== 0) { console.error('build failed'); process.exit(1); }

const phases = [
  { name: 'unit+integration', args: ['--selectProjects', 'unit', 'integration', '--maxWorkers=2'] },
  { name: 'e2e', args: ['--selectProjects', 'e2e', '--runInBand'] },
];
let failedPhase = false;
const totals = { passed: 0, failed: 0, skipped: 0 };
for (const p of phases) {
  const file = join(out, `${p.name}.json`);
  const r = spawnSync(process.execPath, [jest, ...p.args, '--json', `--outputFile=${file}`, ...extra], { cwd: ROOT, env, stdio: 'inherit' });
  try {
    const j = JSON.parse(readFileSync(file, 'utf8'));
    totals.passed += j.numPassedTests; totals.failed += j.numFailedTests; totals.skipped += j.numPendingTests + j.numTodoTests;
    if (j.numFailedTestSuites > 0 || j.numRuntimeErrorTestSuites > 0) failedPhase = true;
  } catch {
    failedPhase = true;
  }
  if (r.status !== 0) failedPhase = true;
}
console.log(`\ntests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(failedPhase || totals.failed > 0 ? 1 : 0);

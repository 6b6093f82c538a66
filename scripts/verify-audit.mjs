#!/usr/bin/env node
// Verifies a tenant's audit chain (AGENTMESH_AUDIT, subject audit.<tenant>): every record's hash
// matches its content, and every prevHash names the record before it. Prints OK with the chain's
// head, or the first broken link (an altered, removed or reordered record).
//
//   node scripts/verify-audit.mjs <tenant>               reads the stream (NATS_URL, default nats://127.0.0.1:4222)
//   node scripts/verify-audit.mjs <tenant> --file <path>  checks an exported copy (a JSON array, or one record per line)
//   add --json for a machine-readable verdict
//
// Exit status: 0 intact, 1 broken, 2 usage or connection error. Needs the build (npm run build):
// it uses the gateway's own verification code from dist/.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => pathToFileURL(join(ROOT, 'dist', p)).href;

function usage(message) {
  if (message) process.stderr.write(`${message}\n`);
  process.stderr.write('usage: node scripts/verify-audit.mjs <tenant> [--file <records.json|.jsonl>] [--json]\n');
  process.exit(2);
}

const args = process.argv.slice(2);
const json = args.includes('--json');
const fileAt = args.indexOf('--file');
const file = fileAt >= 0 ? args[fileAt + 1] : undefined;
if (fileAt >= 0 && !file) usage('--file needs a path');
const tenant = args.find((a, i) => !a.startsWith('--') && (fileAt < 0 || i !== fileAt + 1));
if (!tenant || !/^[a-z0-9][a-z0-9-]{1,62}$/.test(tenant)) usage(tenant ? `"${tenant}" is not a tenant id` : 'which tenant?');

let chain, reader;
try {
  chain = await import(dist('apps/gateway/src/audit/chain.js'));
  reader = await import(dist('apps/gateway/src/audit/reader.js'));
} catch (e) {
  usage(`cannot load the verifier from dist/ (run npm run build first): ${e.message}`);
}

function readFile(path) {
  const text = readFileSync(path, 'utf8').trim();
  if (text.startsWith('[')) return JSON.parse(text);
  return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

let verdict;
try {
  if (file) {
    verdict = chain.verifyAuditChain(tenant, readFile(file));
  } else {
    const { loadConfig } = await import(dist('libs/config/src/index.js'));
    const { connect } = await import('@nats-io/transport-node');
    const nc = await connect({ servers: loadConfig('gateway').natsUrl, name: 'verify-audit', timeout: 5000 });
    try {
      verdict = await reader.verifyTenantAudit(nc, tenant);
    } finally {
      await nc.close();
    }
  }
} catch (e) {
  process.stderr.write(`could not read the audit chain of ${tenant}: ${e.message}\n`);
  process.exit(2);
}

if (json) {
  process.stdout.write(`${JSON.stringify({ tenant, ...verdict })}\n`);
} else if (verdict.ok) {
  process.stdout.write(verdict.head
    ? `OK: the audit chain of ${tenant} is intact: ${verdict.count} records, head seq ${verdict.head.seq} hash ${verdict.head.hash}\n`
    : `OK: the audit chain of ${tenant} is empty\n`);
} else {
  process.stdout.write(`BROKEN: the audit chain of ${tenant} ${verdict.problem === 'altered' ? 'holds an altered record' : 'is broken'} at record ${verdict.index + 1}`
    + `${verdict.id ? ` (id ${verdict.id})` : ''}: ${verdict.detail}; the ${verdict.count} records before it are intact\n`);
}
process.exit(verdict.ok ? 0 : 1);

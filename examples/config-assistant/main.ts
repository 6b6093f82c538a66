/**
 * Runs config-assistant as its own process: connects to the mesh's NATS and serves the planner
 * under its name in its queue group (start several: they share the work). Stops on SIGTERM/SIGINT
 * after answering the requests in progress.
 *
 *   node dist/examples/config-assistant/main.js --nats nats://127.0.0.1:4222
 */
import { servePlanner } from '#libs/sdk';
import { createConfigAssistant } from './assistant.js';
import { parseOptions, USAGE } from './options.js';

const log = (msg: string, fields: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), pid: process.pid, msg, ...fields })}\n`);
};

try {
  const opts = parseOptions(process.argv.slice(2), process.env);
  if (opts.help) {
    process.stdout.write(USAGE);
  } else {
    const planner = createConfigAssistant({ name: opts.name, writeTool: opts.writeTool, readTool: opts.readTool });
    const server = await servePlanner({
      name: planner.name,
      async decide(view, ctx) {
        const decision = await planner.decide(view, ctx);
        log('decided', { tenant: view.tenantId, run: view.runId, decision: ctx.decisionKey, kind: decision.kind });
        return decision;
      },
    }, {
      servers: opts.servers, user: opts.user, pass: opts.pass, token: opts.token,
      ...(opts.tenants.length ? { tenants: opts.tenants } : {}),
      onError: (e) => log('planner failed', { run: e.runId, error: e.message }),
    });
    log('serving', { planner: server.name, queueGroup: true, nats: opts.servers.map((u) => u.replace(/\/\/[^@/]*@/, '//')), tenants: opts.tenants.length ? opts.tenants : 'all' });
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log('stopping', { signal, answered: server.answered });
      void server.close().then(() => process.exit(0), () => process.exit(1));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  }
} catch (e) {
  process.stderr.write(`config-assistant: ${(e as Error).message}\n${(e as Error).name === 'OptionsError' ? USAGE : ''}`);
  process.exitCode = (e as Error).name === 'OptionsError' ? 2 : 1;
}

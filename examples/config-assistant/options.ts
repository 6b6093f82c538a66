import { parseArgs } from 'node:util';

/** How the process runs: where the mesh's NATS is, and which planner it serves under which name. */
export interface MainOptions {
  servers: string[];
  /** NATS credentials (env NATS_USER and NATS_PASSWORD, or NATS_TOKEN): never flags, so they stay out of the process list. */
  user?: string;
  pass?: string;
  token?: string;
  name: string;
  writeTool?: string;
  readTool?: string;
  /** Serve only these tenants (default: every tenant). */
  tenants: string[];
  help: boolean;
}

export const USAGE = `usage: config-assistant [--nats <url>[,<url>...]] [--name <planner>] [--write-tool <tool>] [--read-tool <tool>] [--tenant <id>]...

  --nats        NATS URL(s) of the mesh (env NATS_URL; default nats://127.0.0.1:4222)
  --name        the name agents give as "planner" (env PLANNER_NAME; default config-assistant)
  --write-tool  the tool that applies a change (default: the agent's first tool with risk tier "write")
  --read-tool   the tool that reads the current value (default: the agent's first tool with risk tier "read")
  --tenant      serve only this tenant (repeatable; default: every tenant)

  NATS credentials come from the environment only: NATS_USER and NATS_PASSWORD, or NATS_TOKEN.
`;

export class OptionsError extends Error {
  override name = 'OptionsError';
  readonly code = 'usage';
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
  }
}

/** Reads the command line, then the environment (passed in: main.ts is the only reader of process.env). */
export function parseOptions(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): MainOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        nats: { type: 'string' }, name: { type: 'string' }, 'write-tool': { type: 'string' }, 'read-tool': { type: 'string' },
        tenant: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' },
      },
      strict: true, allowPositionals: false,
    }));
  } catch (e) {
    throw new OptionsError((e as Error).message, { cause: e });
  }
  const servers = (values.nats ?? env.NATS_URL ?? 'nats://127.0.0.1:4222').split(',').map((s) => s.trim()).filter(Boolean);
  if (!servers.length) throw new OptionsError('--nats needs a URL');
  const name = values.name ?? env.PLANNER_NAME ?? 'config-assistant';
  return {
    servers, name, tenants: values.tenant ?? [], help: values.help === true,
    ...(env.NATS_USER ? { user: env.NATS_USER, pass: env.NATS_PASSWORD ?? '' } : {}),
    ...(env.NATS_TOKEN ? { token: env.NATS_TOKEN } : {}),
    ...(values['write-tool'] ? { writeTool: values['write-tool'] } : {}),
    ...(values['read-tool'] ? { readTool: values['read-tool'] } : {}),
  };
}

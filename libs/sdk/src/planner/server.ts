import { connect, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { plannerQueueGroup, plannerSubscription } from '#libs/contracts';
import { PlannerConnectionError } from './errors.js';
import { answer, type PlannerDefinition } from './planner.js';

export interface ServePlannerOptions {
  /** NATS server URL(s) of the mesh, e.g. `nats://127.0.0.1:4222`. Ignored when `connection` is given. */
  servers?: string | string[];
  /** NATS credentials (a user and password, or a token), for a mesh whose NATS requires them. */
  user?: string;
  pass?: string;
  token?: string;
  /** An open NATS connection to use instead (the SDK does not close it). */
  connection?: NatsConnection;
  /** Serve only these tenants; default: every tenant whose agents name this planner. */
  tenants?: string[];
  /** Called for each request that failed (the run fails `planner_error`), for the planner's own logs. */
  onError?: (err: { runId: string; message: string }) => void;
  /** Testing only: the protocol this planner claims to speak (the orchestrator refuses incompatible ones). */
  protocol?: string;
}

export interface PlannerServer {
  readonly name: string;
  /** Requests answered so far. */
  readonly answered: number;
  /** Stops taking requests, finishes those in progress, and closes the connection it opened. */
  close(): Promise<void>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Serves a planner to the mesh: connects to NATS, registers under the planner's name in its queue
 * group (several instances share the requests of every run) and answers each request with the
 * planner's decision. Reconnects by itself; while no instance is up, runs that need the planner
 * wait, and continue when one is back.
 */
export async function servePlanner(planner: PlannerDefinition, opts: ServePlannerOptions): Promise<PlannerServer> {
  let nc = opts.connection;
  const owned = nc === undefined;
  if (!nc) {
    if (!opts.servers) throw new PlannerConnectionError('servePlanner needs `servers` (the mesh NATS URL) or a `connection`');
    try {
      nc = await connect({
        servers: opts.servers, name: `planner:${planner.name}`, maxReconnectAttempts: -1, reconnectTimeWait: 500,
        ...(opts.user !== undefined ? { user: opts.user, pass: opts.pass } : {}), ...(opts.token !== undefined ? { token: opts.token } : {}),
      });
    } catch (e) {
      // the URLs without any credentials written into them
      const where = [opts.servers].flat().map((u) => u.replace(/\/\/[^@/]*@/, '//')).join(',');
      throw new PlannerConnectionError(`could not connect to NATS at ${where}: ${(e as Error).message}`, { cause: e });
    }
  }
  const conn = nc;
  let answered = 0;
  const inFlight = new Set<Promise<void>>();
  const handle = (m: Msg): void => {
    const p = (async () => {
      let request: unknown;
      try { request = JSON.parse(dec.decode(m.data)); } catch { request = undefined; }
      const reply = await answer(planner, request, { protocol: opts.protocol });
      if (!reply.ok && reply.error.code === 'planner_failed') {
        opts.onError?.({ runId: (request as { runId?: string } | undefined)?.runId ?? '', message: reply.error.message });
      }
      answered++;
      m.respond(enc.encode(JSON.stringify(reply)));
    })().catch(() => undefined);
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  const subs: Subscription[] = (opts.tenants?.length ? opts.tenants : ['*']).map((t) =>
    conn.subscribe(plannerSubscription(planner.name, t), { queue: plannerQueueGroup(planner.name), callback: (err, m) => { if (!err) handle(m); } }));
  await conn.flush(); // registered with the server before we say we serve
  return {
    name: planner.name,
    get answered() { return answered; },
    async close() {
      for (const s of subs) s.unsubscribe();
      await Promise.all(inFlight);
      if (owned) await conn.drain();
    },
  };
}

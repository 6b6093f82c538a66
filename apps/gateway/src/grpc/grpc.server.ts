import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { Server, ServerCredentials, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath, type ServingStatusMap } from 'grpc-health-check';
import type { NatsConnection } from '@nats-io/transport-node';
import { unavailable, PROTO_FILES, protoLoaderOptions } from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CONFIG, LOGGER, NATS } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { AgentsService } from '../agents/agents.service.js';
import { AuditSearch } from '../audit/audit-search.service.js';
import { AuditLog } from '../audit/audit.service.js';
import { Authorizer } from '../http/auth.js';
import { GatewayPolicy } from '../policy/gateway-policy.js';
import { RunsService } from '../runs/runs.service.js';
import { TenantsService } from '../tenants/keys.service.js';
import { SessionsService } from '../tenants/sessions.service.js';
import { OVERSIZE, type CallContext, type CallDeps } from './call.js';
import { createServiceImplementations } from './handlers.js';

/** Services the health protocol reports on ('' is the server as a whole). */
const SERVED = [
  '', 'agentmesh.v1.Tenants', 'agentmesh.v1.Tools', 'agentmesh.v1.Agents', 'agentmesh.v1.Runs', 'agentmesh.v1.Approvals',
  'agentmesh.v1.Credentials', 'agentmesh.v1.Budgets', 'agentmesh.v1.Audit', 'agentmesh.v1.Policies', 'agentmesh.v1.Sessions',
];
const SHUTDOWN_GRACE_MS = 5_000;

/**
 * Wraps every method's request deserializer: a message above `maxBytes` is not decoded but
 * replaced by a marker, which the call turns into RESOURCE_EXHAUSTED with the problem detail
 * (`payload_too_large`, like REST's 413) before anything else runs. grpc-js' own limit is set
 * higher as a hard stop for messages too large to even buffer.
 */
export function oversizeAware(def: ServiceDefinition, maxBytes: number): ServiceDefinition {
  const out: Record<string, ServiceDefinition[string]> = {};
  for (const [name, method] of Object.entries(def)) {
    const decode = method.requestDeserialize;
    out[name] = { ...method, requestDeserialize: (buf: Buffer) => (buf.length > maxBytes ? { [OVERSIZE]: buf.length } : decode(buf)) };
  }
  return out as ServiceDefinition;
}

const addressOf = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

/**
 * The gateway's gRPC API (`proto/agentmesh/v1`), on `config.host:config.grpcPort`, beside REST:
 * the same services, the same Authorizer and the same schemas (handlers.ts), plus the standard
 * health protocol and server reflection, which need no key. Calls are refused with UNAVAILABLE
 * until the Nest app has initialised its providers, and again while it shuts down; open WatchRun
 * streams then end with UNAVAILABLE so that clients resume with `after_seq`.
 */
@Injectable()
export class GrpcGateway implements OnApplicationBootstrap, OnModuleDestroy {
  private server?: Server;
  private readonly health = new HealthImplementation(Object.fromEntries(SERVED.map((s) => [s, 'NOT_SERVING'])) as ServingStatusMap);
  private ready = false;
  private closing = false;
  private natsUp = true;
  private readonly streams = new Set<CallContext>();
  private boundPort = 0;

  constructor(
    private readonly runs: RunsService,
    private readonly tenants: TenantsService,
    private readonly agents: AgentsService,
    private readonly auth: Authorizer,
    private readonly audit: AuditLog,
    private readonly auditSearch: AuditSearch,
    private readonly policy: GatewayPolicy,
    private readonly sessions: SessionsService,
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** The port bound (useful with GRPC_PORT=0). */
  get port(): number { return this.boundPort; }

  /** Binds the port and registers the services; a port in use fails the gateway's start. */
  async listen(): Promise<number> {
    if (this.server) return this.boundPort;
    const pkg = loadSync([...PROTO_FILES], protoLoaderOptions());
    const healthPkg = loadSync(healthProtoPath, protoLoaderOptions());
    const maxBytes = this.config.maxBodyBytes;
    const server = new Server({
      'grpc.max_receive_message_length': 2 * maxBytes,
      // notices clients that vanished without closing, so their WatchRun consumers stop
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    const deps: CallDeps = {
      auth: this.auth,
      logger: this.logger,
      maxMessageBytes: maxBytes,
      admit: () => {
        if (this.closing) throw unavailable('the gateway is shutting down; call again');
        if (!this.ready) throw unavailable('the gateway is starting; call again');
      },
      track: (ctx) => {
        this.streams.add(ctx);
        return () => this.streams.delete(ctx);
      },
    };
    const impls = await createServiceImplementations({
      tenants: this.tenants, agents: this.agents, runs: this.runs, nc: this.nc, audit: this.audit, auditSearch: this.auditSearch,
      policy: this.policy, sessions: this.sessions, budgetStateCacheMs: this.config.budgetStateCacheMs,
    }, deps);
    for (const [name, impl] of Object.entries(impls)) {
      server.addService(oversizeAware(pkg[name] as unknown as ServiceDefinition, maxBytes), impl);
    }
    this.health.addToServer(server);
    new ReflectionService({ ...pkg, ...healthPkg } as PackageDefinition).addToServer(server);
    const address = addressOf(this.config.host, this.config.grpcPort);
    this.boundPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(address, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
    });
    this.server = server;
    this.watchNats();
    this.logger.info({ address: addressOf(this.config.host, this.boundPort), maxMessageBytes: maxBytes }, 'gRPC API listening');
    return this.boundPort;
  }

  onApplicationBootstrap(): void {
    this.ready = true;
    this.updateHealth();
  }

  async onModuleDestroy(): Promise<void> {
    await this.close();
  }

  /** Stops taking calls, ends open streams with UNAVAILABLE, waits for calls in flight (bounded), then closes. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server || this.closing) return;
    this.closing = true;
    this.updateHealth();
    for (const ctx of this.streams) ctx.abort('shutdown');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, SHUTDOWN_GRACE_MS);
      timer.unref();
      server.tryShutdown(() => { clearTimeout(timer); resolve(); });
    });
    this.logger.info('gRPC API closed');
  }

  private updateHealth(): void {
    const status = this.ready && !this.closing && this.natsUp ? 'SERVING' : 'NOT_SERVING';
    for (const s of SERVED) this.health.setStatus(s, status);
  }

  /** The health status follows the broker connection, as /readyz does. */
  private watchNats(): void {
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === 'disconnect') { this.natsUp = false; this.updateHealth(); }
        if (s.type === 'reconnect') { this.natsUp = true; this.updateHealth(); }
      }
    })().catch((err: unknown) => this.logger.warn({ err }, 'NATS status watch ended'));
  }
}

import {
  Metadata, status as Status, type Deadline, type handleServerStreamingCall, type handleUnaryCall, type ServerWritableStream,
} from '@grpc/grpc-js';
import { AgentmeshError, invalid, unavailable } from '#libs/contracts';
import type { OperationId, Principal } from '#libs/policy';
import { registry, runWithTrace, safeId, traceFromMetadata, TRACE_HEADERS, type Logger } from '#libs/telemetry';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Authorizer } from '../http/auth.js';
import { CallAbortedError, toGrpcFailure } from './status.js';

/** gRPC metrics of the gateway (method = `/agentmesh.v1.Runs/StartRun`: bounded by the contract). */
export const grpcMetrics = {
  requests: new Counter({ name: 'agentmesh_grpc_requests_total', help: 'gRPC calls by method and status code', labelNames: ['method', 'code'], registers: [registry] }),
  duration: new Histogram({
    name: 'agentmesh_grpc_request_duration_seconds', help: 'gRPC call latency (streams: their whole life)', labelNames: ['method'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120, 600], registers: [registry],
  }),
  streams: new Gauge({ name: 'agentmesh_grpc_streams_active', help: 'Server streams in progress (WatchRun)', labelNames: ['method'], registers: [registry] }),
};

/** Marks a request message larger than the configured limit (see oversizeAware in grpc.server.ts). */
export const OVERSIZE = Symbol('agentmesh.oversize');
export interface OversizeMarker { [OVERSIZE]: number }
export const isOversize = (m: unknown): m is OversizeMarker => typeof m === 'object' && m !== null && OVERSIZE in m;

/** What every call needs from the server. */
export interface CallDeps {
  auth: Authorizer;
  logger: Logger;
  maxMessageBytes: number;
  /** Throws UNAVAILABLE while the gateway starts or stops. */
  admit(): void;
  /** Streams register so that shutdown can end them (UNAVAILABLE: resume with after_seq). */
  track(ctx: CallContext): () => void;
}

type AbortReason = 'cancelled' | 'deadline_exceeded' | 'shutdown';

/** What unary calls and server streams have in common. */
interface ServerSurfaceCall {
  readonly metadata: Metadata;
  getDeadline(): Deadline;
  sendMetadata(md: Metadata): void;
  on(event: 'cancelled', listener: () => void): unknown;
}

/**
 * One call: its metadata, its principal, and an AbortSignal that fires when the client cancels,
 * the deadline passes or the server shuts down. Handlers call `checkpoint()` before side effects,
 * so a call nobody waits for any more changes nothing.
 */
export class CallContext {
  private readonly ac = new AbortController();
  private timer?: NodeJS.Timeout;
  reason?: AbortReason;

  constructor(private readonly call: ServerSurfaceCall, private readonly deps: CallDeps) {
    call.on('cancelled', () => this.abort('cancelled'));
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    if (Number.isFinite(at)) {
      const ms = at - Date.now();
      if (ms <= 0) this.abort('deadline_exceeded');
      else {
        this.timer = setTimeout(() => this.abort('deadline_exceeded'), Math.min(ms, 2 ** 31 - 1));
        this.timer.unref();
      }
    }
  }

  get signal(): AbortSignal { return this.ac.signal; }

  abort(reason: AbortReason): void {
    if (this.ac.signal.aborted) return;
    this.reason = reason;
    this.ac.abort();
  }

  /** First value of a metadata key (keys are lowercase). */
  header(name: string): string | undefined {
    const v = this.call.metadata.get(name)[0];
    return typeof v === 'string' ? v : undefined;
  }

  /** Throws when nobody waits for the answer any more. */
  checkpoint(): void {
    if (!this.ac.signal.aborted) return;
    if (this.reason === 'shutdown') throw unavailable('the gateway is shutting down; call again');
    throw new CallAbortedError(this.reason === 'deadline_exceeded' ? 'deadline_exceeded' : 'cancelled');
  }

  /**
   * The REST guard's work: the `authorization` metadata becomes a principal (UNAUTHENTICATED),
   * then the policy decides the operation on the tenant (PERMISSION_DENIED; NOT_FOUND for a
   * malformed tenant id). `tenant` null means a platform operation without a tenant.
   */
  async authorize(op: OperationId, tenant: string | null | undefined, body: unknown): Promise<Principal> {
    const principal = await this.deps.auth.authenticate(this.header('authorization'));
    this.checkpoint();
    if (tenant !== null && !tenant) throw invalid('tenant is required', [{ field: 'tenant', message: 'is required' }]);
    await this.deps.auth.authorize(principal, tenant ?? undefined, op, body);
    this.checkpoint();
    return principal;
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}

/** A required string field of a request: INVALID_ARGUMENT naming it when empty. */
export function required(value: string | undefined, field: string): string {
  if (!value) throw invalid(`${field} is required`, [{ field, message: 'is required' }]);
  return value;
}

function tenantOf(req: unknown): string | undefined {
  return safeId((req as { tenant?: unknown } | null)?.tenant);
}

/** Common start of a call: refuse while not serving and refuse oversized messages (REST checks the body size first too). */
function admit(deps: CallDeps, request: unknown): void {
  deps.admit();
  if (isOversize(request)) {
    throw new AgentmeshError(
      'payload_too_large',
      `the request message is ${request[OVERSIZE]} bytes, larger than the limit of ${deps.maxMessageBytes} bytes`,
    );
  }
}

function finish(deps: CallDeps, method: string, started: bigint, code: Status, ctx: CallContext): void {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const name = Status[code] ?? String(code);
  grpcMetrics.requests.inc({ method, code: name });
  grpcMetrics.duration.observe({ method }, seconds);
  deps.logger.info({ method, code: name, ms: Math.round(seconds * 1e6) / 1e3, ...(ctx.reason ? { aborted: ctx.reason } : {}) }, 'rpc');
}

function startTrace(call: ServerSurfaceCall, request: unknown) {
  const trace = traceFromMetadata(call.metadata, { tenantId: tenantOf(request) });
  const md = new Metadata();
  md.set(TRACE_HEADERS.traceparent, trace.traceparent);
  call.sendMetadata(md);
  return trace;
}

/** A unary handler: runs `fn` in the call's trace context and maps its errors to statuses. */
export function unary<Req, Res>(method: string, deps: CallDeps, fn: (req: Req, ctx: CallContext) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const ctx = new CallContext(call, deps);
    const trace = startTrace(call, call.request);
    runWithTrace(trace, () => {
      Promise.resolve()
        .then(() => { admit(deps, call.request); ctx.checkpoint(); return fn(call.request, ctx); })
        .then(
          (res) => { finish(deps, method, started, Status.OK, ctx); callback(null, res); },
          (err: unknown) => {
            const f = toGrpcFailure(err, deps.logger);
            finish(deps, method, started, f.code, ctx);
            callback(f);
          },
        )
        .finally(() => ctx.dispose());
    });
  };
}

/** Sends one message of a server stream, waiting while the client reads slower than we write. */
export type Send<Res> = (msg: Res) => Promise<void>;

/**
 * A server-streaming handler. `fn` sends with backpressure and returns when the stream is
 * complete (status OK). Client cancellation and deadlines abort `ctx.signal`, which the handler
 * passes on to whatever it reads from; shutdown ends the stream with UNAVAILABLE.
 */
export function serverStream<Req, Res>(
  method: string, deps: CallDeps, fn: (req: Req, ctx: CallContext, send: Send<Res>) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call: ServerWritableStream<Req, Res>) => {
    const started = process.hrtime.bigint();
    const ctx = new CallContext(call, deps);
    const trace = startTrace(call, call.request);
    const send: Send<Res> = async (msg) => {
      ctx.checkpoint();
      if (call.write(msg)) return;
      await new Promise<void>((resolve) => {
        const done = () => { call.off('drain', done); ctx.signal.removeEventListener('abort', done); resolve(); };
        call.on('drain', done);
        ctx.signal.addEventListener('abort', done, { once: true });
      });
      ctx.checkpoint();
    };
    const fail = (err: unknown) => {
      const f = toGrpcFailure(err, deps.logger);
      finish(deps, method, started, f.code, ctx);
      // a cancelled call, or one past its deadline, already has its status (grpc-js sent it)
      if (ctx.reason === 'cancelled' || ctx.reason === 'deadline_exceeded' || call.cancelled) return;
      call.emit('error', Object.assign(new Error(f.details), f));
    };
    runWithTrace(trace, () => {
      let untrack = () => {};
      grpcMetrics.streams.inc({ method });
      Promise.resolve()
        .then(() => { admit(deps, call.request); untrack = deps.track(ctx); ctx.checkpoint(); return fn(call.request, ctx, send); })
        .then(() => {
          ctx.checkpoint();
          finish(deps, method, started, Status.OK, ctx);
          call.end();
        })
        .catch(fail)
        .finally(() => { untrack(); ctx.dispose(); grpcMetrics.streams.dec({ method }); });
    });
  };
}

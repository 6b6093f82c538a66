import { Catch, Controller, UseFilters, applyDecorators, type RpcExceptionFilter } from '@nestjs/common';
import { BaseRpcContext, EventPattern, MessagePattern, Server, type CustomTransportStrategy } from '@nestjs/microservices';
import { jetstream, type Consumer, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import { lastValueFrom, throwError, type Observable } from 'rxjs';
import {
  AgentmeshError, HEADERS, isTenantId, rpcQueueGroup, rpcSubject, type CommandMap, type CommandName, type RpcMap, type RpcName, type WireError,
} from '#libs/contracts';
import { childTraceparent, metrics, runWithTrace, safeId, type Logger, type TraceContext } from '#libs/telemetry';
import { decodeJson, encodeJson } from './codec.js';
import { fateOf } from './errors.js';

const CMD = 'cmd:';

/** A command whose tenant ids disagree (see tenantMismatch); it is terminated, never handled. */
export class TenantMismatchError extends Error {
  override name = 'TenantMismatchError';
  readonly code = 'tenant_mismatch';
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, opts);
  }
}
const RPC = 'rpc:';

type HandlerDecorator<T, R> = <M extends (data: T, ...rest: never[]) => R>(target: object, key: string | symbol, d: TypedPropertyDescriptor<M>) => void;

const COMMAND_METADATA = 'agentmesh:command';
type CommandFn = (data: unknown, ctx: JsContext) => unknown;

/**
 * Handles one durable command; throw RetryLaterError / TerminalMessageError to choose its fate.
 * The method is called as `(payload, ctx)` directly by the transport (see JetStreamServer), so
 * keep `@Payload()` first and `@Ctx()` second; Nest's RPC pipes, guards and interceptors do not
 * run for commands (profiles showed that pipeline as a large share of the cost per message).
 */
export function OnCommand<N extends CommandName>(name: N): HandlerDecorator<CommandMap[N], unknown> {
  const nest = EventPattern(`${CMD}${name}`) as HandlerDecorator<CommandMap[N], unknown>;
  return (target, key, d) => {
    Reflect.defineMetadata(COMMAND_METADATA, name, target, key);
    nest(target, key, d);
  };
}

/** Finds the @OnCommand methods of controller instances, bound, by command name. */
export function commandHandlersOf(instances: object[]): Map<string, CommandFn> {
  const out = new Map<string, CommandFn>();
  for (const inst of instances) {
    const proto = Object.getPrototypeOf(inst) as Record<string, unknown>;
    for (const key of Object.getOwnPropertyNames(proto)) {
      const name = Reflect.getMetadata(COMMAND_METADATA, proto, key) as string | undefined;
      if (name && typeof proto[key] === 'function') out.set(name, (proto[key] as CommandFn).bind(inst));
    }
  }
  return out;
}
/** Answers one request/reply question; throw an AgentmeshError to answer with an error. */
export function OnRpc<N extends RpcName>(name: N): HandlerDecorator<RpcMap[N]['req'], Promise<RpcMap[N]['res']> | RpcMap[N]['res']> {
  return MessagePattern(`${RPC}${name}`) as HandlerDecorator<RpcMap[N]['req'], Promise<RpcMap[N]['res']> | RpcMap[N]['res']>;
}

/** Lets handler errors reach the transport unchanged, so the transport decides message fate. */
@Catch()
export class RethrowRpcFilter implements RpcExceptionFilter {
  catch(exception: unknown): Observable<never> {
    return throwError(() => exception);
  }
}

/** A controller whose handlers the JetStream transport calls. */
export const MessageController = () => applyDecorators(Controller(), UseFilters(RethrowRpcFilter));

/** What a command handler can see of its message. */
export class JsContext extends BaseRpcContext<[JsMsg]> {
  get msg(): JsMsg { return this.getArgs()[0]; }
  get deliveryCount(): number { return this.msg.info.deliveryCount; }
  get redelivered(): boolean { return this.msg.redelivered; }
  /** Tells JetStream the work is still going, so it is not redelivered after ack-wait. */
  working(): void { this.msg.working(); }
}

export type CommandHandlerData<N extends CommandName> = CommandMap[N];

export interface JetStreamServerOptions {
  nc: NatsConnection;
  service: string;
  logger: Logger;
  /** The durable work consumers this service reads. */
  consumers: ReadonlyArray<{ stream: string; durable: string }>;
  /** Deliveries after which a message that keeps failing with unknown errors is dropped. */
  maxDeliveries?: number;
  /** Messages pulled at once per consumer. */
  batch?: number;
  /** How often each consumer's pending / ack-pending counts are read for the lag gauges (0: never). */
  lagIntervalMs?: number;
}

/**
 * The trace context a message's handler runs in: the sender's trace continued (or a new one), and
 * the tenant and session from the headers, else from the payload's `tenantId` / `sessionId`.
 */
export function traceOfMessage(h: MsgHdrs | undefined, data: unknown): TraceContext {
  const ctx: TraceContext = { traceparent: childTraceparent(h?.get(HEADERS.traceparent)) };
  const body = data && typeof data === 'object' ? (data as { tenantId?: unknown; sessionId?: unknown }) : undefined;
  const tenantId = safeId(h?.get(HEADERS.tenant)) ?? safeId(body?.tenantId);
  const sessionId = safeId(h?.get(HEADERS.session)) ?? safeId(body?.sessionId);
  if (tenantId) ctx.tenantId = tenantId;
  if (sessionId) ctx.sessionId = sessionId;
  return ctx;
}

/**
 * Whether a message's tenant ids agree; the reason they do not, otherwise.
 *
 * Commands (`cmd.v1.<service>.<tenant>.<runId>...`, `timer.v1.<service>.<tenant>.<runId>...`) carry
 * the tenant three times: in the subject, in the `am-tenant` header and in the payload's
 * `tenantId`. The subject and the payload must name the same valid tenant, and the header, when
 * present, too. RPC requests have no tenant in the subject: the header, when present, must equal
 * the payload's `tenantId`, when present. A message that fails is never handled: a forged or
 * corrupted id could otherwise make a service act for one tenant on another tenant's resources.
 */
export function tenantMismatch(kind: 'command' | 'rpc', subject: string, headerTenant: string | undefined, data: unknown): string | undefined {
  const body = data && typeof data === 'object' && !Array.isArray(data) ? (data as { tenantId?: unknown }) : undefined;
  const payloadTenant = body?.tenantId;
  if (kind === 'rpc') {
    if (headerTenant === undefined || payloadTenant === undefined) return undefined;
    return payloadTenant === headerTenant ? undefined : 'the am-tenant header and the payload tenantId disagree';
  }
  const tokens = subject.split('.');
  const subjectTenant = tokens.length >= 5 && tokens[1] === 'v1' ? tokens[3] : undefined;
  if (subjectTenant === undefined || !isTenantId(subjectTenant)) return 'the subject carries no tenant';
  if (typeof payloadTenant !== 'string') return 'the payload carries no tenantId';
  if (payloadTenant !== subjectTenant) return 'the subject tenant and the payload tenantId disagree';
  if (headerTenant !== undefined && headerTenant !== subjectTenant) return 'the am-tenant header and the subject tenant disagree';
  return undefined;
}

/**
 * NestJS transport strategy over JetStream: durable work consumers for commands (explicit ack,
 * redelivery after ack-wait, fate decided by `fateOf`) and core NATS request/reply with a queue
 * group for RPC. Unlike Nest's built-in NATS transport it is durable: a command is acknowledged
 * only after its handler finished.
 */
export class JetStreamServer extends Server implements CustomTransportStrategy {
  private readonly subs: Subscription[] = [];
  private readonly iters: ConsumerMessages[] = [];
  private readonly consumers: Array<{ stream: string; durable: string; consumer: Consumer }> = [];
  private lagTimer: NodeJS.Timeout | undefined;
  private lagBusy = false;
  private readonly inflight = new Set<Promise<void>>();
  /** Command handlers by name, bound to their controllers (see OnCommand). */
  private commandHandlers = new Map<string, CommandFn>();
  private closing = false;

  constructor(private readonly opts: JetStreamServerOptions) {
    super();
  }

  /** Installs the command handlers (from commandHandlersOf) before listen. */
  useCommandHandlers(handlers: Map<string, CommandFn>): void {
    this.commandHandlers = handlers;
  }

  on(): never { throw new Error('JetStreamServer has no events'); }
  unwrap<T>(): T { return this.opts.nc as T; }

  async listen(callback: (...optionalParams: unknown[]) => void): Promise<void> {
    try {
      for (const pattern of this.messageHandlers.keys()) {
        if (pattern.startsWith(RPC)) this.subscribeRpc(pattern.slice(RPC.length) as RpcName);
      }
      for (const c of this.opts.consumers) await this.consume(c.stream, c.durable);
      this.startLagGauges();
      callback();
    } catch (e) {
      callback(e);
    }
  }

  private subscribeRpc(name: RpcName): void {
    const handler = this.getHandlerByPattern(`${RPC}${name}`)!;
    const sub = this.opts.nc.subscribe(rpcSubject(name), {
      queue: rpcQueueGroup(name),
      callback: (err, msg) => {
        if (err) { this.opts.logger.error({ err, rpc: name }, 'rpc subscription error'); return; }
        this.track(this.answer(name, handler, msg));
      },
    });
    this.subs.push(sub);
  }

  private async answer(name: RpcName, handler: NonNullable<ReturnType<Server['getHandlerByPattern']>>, msg: Msg): Promise<void> {
    const started = process.hrtime.bigint();
    let reply: { ok: true; value: unknown } | { ok: false; error: WireError };
    try {
      const data = decodeJson<unknown>(msg.data);
      const mismatch = tenantMismatch('rpc', msg.subject, msg.headers?.get(HEADERS.tenant) || undefined, data);
      if (mismatch) {
        this.opts.logger.error({ rpc: name, subject: msg.subject, reason: mismatch }, 'refused an RPC request whose tenant ids disagree');
        throw new AgentmeshError('permission_denied', `tenant mismatch: ${mismatch}`, { reason: 'tenant_mismatch' });
      }
      const value = await runWithTrace(traceOfMessage(msg.headers, data), async () => this.result(await handler(data, new BaseRpcContext([msg]))));
      reply = { ok: true, value };
    } catch (e) {
      if (e instanceof AgentmeshError) reply = { ok: false, error: e.toWire() };
      else if (e instanceof SyntaxError) reply = { ok: false, error: { code: 'invalid_argument', message: 'request is not valid JSON' } };
      else {
        this.opts.logger.error({ err: e, rpc: name }, 'rpc handler failed');
        reply = { ok: false, error: { code: 'internal', message: 'internal error' } };
      }
    }
    metrics.messages.inc({ kind: `rpc:${name}`, outcome: reply.ok ? 'ok' : reply.error.code });
    metrics.messageDuration.observe({ kind: `rpc:${name}` }, Number(process.hrtime.bigint() - started) / 1e9);
    msg.respond(encodeJson(reply));
  }

  private async consume(stream: string, durable: string): Promise<void> {
    const js = jetstream(this.opts.nc);
    const consumer = await js.consumers.get(stream, durable);
    const iter = await consumer.consume({ max_messages: this.opts.batch ?? 256 });
    this.iters.push(iter);
    this.consumers.push({ stream, durable, consumer });
    void (async () => {
      for await (const m of iter) this.track(this.handleCommand(m));
    })().catch((e) => {
      if (!this.closing) this.opts.logger.error({ err: e, durable }, 'consumer loop ended');
    });
  }

  private async handleCommand(m: JsMsg): Promise<void> {
    const started = process.hrtime.bigint();
    const name = m.headers?.get(HEADERS.type) ?? '';
    const handler = this.commandHandlers.get(name);
    const kind = `cmd:${name || 'unknown'}`;
    let outcome: string;
    let trace: TraceContext | undefined;
    if (!handler) {
      m.term(); // no reason on the wire: nats-server 2.9 does not recognise `+TERM <reason>` and redelivers
      this.opts.logger.error({ subject: m.subject, type: name }, 'dropped a command nobody handles');
      outcome = 'term';
    } else {
      try {
        const data = decodeJson<unknown>(m.data);
        const mismatch = tenantMismatch('command', m.subject, m.headers?.get(HEADERS.tenant) || undefined, data);
        if (mismatch) throw new TenantMismatchError(mismatch);
        trace = traceOfMessage(m.headers, data);
        await runWithTrace(trace, async () => this.result(await handler(data, new JsContext([m]))));
        m.ack();
        outcome = 'ack';
      } catch (e) {
        const fate = e instanceof SyntaxError
          ? { kind: 'term' as const, reason: 'payload is not valid JSON' }
          : e instanceof TenantMismatchError
            ? { kind: 'term' as const, reason: `tenant mismatch: ${e.message}` }
            : fateOf(e, m.info.deliveryCount, this.opts.maxDeliveries ?? 50);
        const log = () => {
          if (fate.kind === 'nak') {
            if (fate.counts) this.opts.logger.warn({ err: e, subject: m.subject, delivery: m.info.deliveryCount }, 'command failed; will retry');
          } else if (fate.kind === 'term') {
            this.opts.logger.error({ err: e, subject: m.subject, reason: fate.reason }, 'command dropped');
          }
        };
        if (fate.kind === 'nak') m.nak(fate.delayMs);
        else if (fate.kind === 'term') m.term(); // the reason is logged below (2.9 ignores `+TERM <reason>`)
        if (trace) runWithTrace(trace, log); else log();
        outcome = fate.kind;
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.messages.inc({ kind, outcome });
    metrics.messageDuration.observe({ kind }, seconds);
    // one line per durable command, in the command's trace: its trace id, tenant and session
    if (trace && this.opts.logger.isLevelEnabled('info')) {
      runWithTrace(trace, () => this.opts.logger.info({ kind, outcome, subject: m.subject, delivery: m.info.deliveryCount, ms: Math.round(seconds * 1e6) / 1e3 }, 'command handled'));
    }
  }

  /**
   * Reads each durable consumer's info every `lagIntervalMs` (default 5 s; one small JetStream API
   * request per consumer) into agentmesh_jetstream_consumer_pending / _ack_pending. Every replica
   * of a service reports the same numbers; the alert rules take `max by (stream, consumer)`.
   */
  private startLagGauges(): void {
    const every = this.opts.lagIntervalMs ?? 5000;
    if (every <= 0 || this.consumers.length === 0) return;
    void this.readLag();
    this.lagTimer = setInterval(() => void this.readLag(), every);
    this.lagTimer.unref();
  }

  private async readLag(): Promise<void> {
    if (this.lagBusy || this.closing) return;
    this.lagBusy = true;
    try {
      await Promise.all(this.consumers.map(async ({ stream, durable, consumer }) => {
        try {
          const info = await consumer.info(false);
          metrics.consumerPending.set({ stream, consumer: durable }, info.num_pending);
          metrics.consumerAckPending.set({ stream, consumer: durable }, info.num_ack_pending);
        } catch (e) {
          // broker unreachable or restarting: keep the last value; the next tick tries again
          if (!this.closing) this.opts.logger.debug({ err: e, stream, consumer: durable }, 'consumer info failed');
        }
      }));
    } finally {
      this.lagBusy = false;
    }
  }

  private async result(v: unknown): Promise<unknown> {
    if (v && typeof (v as Observable<unknown>).subscribe === 'function') {
      return lastValueFrom(v as Observable<unknown>, { defaultValue: undefined });
    }
    return v;
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** Stops taking messages, lets the ones in hand finish, then returns. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.lagTimer) clearInterval(this.lagTimer);
    for (const it of this.iters) it.stop();
    for (const s of this.subs) s.unsubscribe();
    await Promise.allSettled([...this.inflight]);
  }
}

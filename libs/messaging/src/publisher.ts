import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { commandSubject, HEADERS, type CommandMap, type CommandName } from '#libs/contracts';
import { encodeJson } from './codec.js';
import { publisherFor, type JetStreamPublisher } from './js-publisher.js';
import { currentTrace, safeId } from '#libs/telemetry';

/** Publishes typed durable commands. A wrong payload for a name does not compile. */
export class CommandBus {
  private readonly js: JetStreamPublisher;
  constructor(nc: NatsConnection) {
    this.js = publisherFor(nc);
  }

  /**
   * Publishes a command and waits for JetStream to store it. `msgId` makes the publish idempotent
   * within the stream's duplicate window (2 min): a second publish with the same id is dropped.
   */
  async send<N extends CommandName>(name: N, payload: CommandMap[N], msgId: string): Promise<{ seq: number; duplicate: boolean }> {
    const h = natsHeaders();
    h.set(HEADERS.type, name);
    h.set(HEADERS.schema, '1');
    h.set(HEADERS.tenant, payload.tenantId);
    const trace = currentTrace();
    if (trace) h.set(HEADERS.traceparent, trace.traceparent);
    // the session travels with the run's work: named by the command itself (run.start), else by the trace context
    const sessionId = safeId((payload as { sessionId?: unknown }).sessionId) ?? safeId(trace?.sessionId);
    if (sessionId) h.set(HEADERS.session, sessionId);
    h.set('Nats-Msg-Id', msgId);
    const ack = await this.js.publish(commandSubject(name, payload), encodeJson(payload), h);
    return { seq: ack.seq, duplicate: ack.duplicate };
  }
}

import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { commandSubject, HEADERS, type CommandMap, type CommandName } from '#libs/contracts';
import { encodeJson } from './codec.js';
import { currentTraceparent } from '#libs/telemetry';

/** Publishes typed durable commands. A wrong payload for a name does not compile. */
export class CommandBus {
  private readonly js: JetStreamClient;
  constructor(nc: NatsConnection) {
    this.js = jetstream(nc, { timeout: 10_000 });
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
    const tp = currentTraceparent();
    if (tp) h.set(HEADERS.traceparent, tp);
    const ack = await this.js.publish(commandSubject(name, payload), encodeJson(payload), { msgID: msgId, headers: h });
    return { seq: ack.seq, duplicate: ack.duplicate };
  }
}

import { errors as natsErrors, type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import { AgentmeshError, HEADERS, rpcSubject, unavailable, type RpcMap, type RpcName, type RpcReply } from '#libs/contracts';
import { decodeJson, encodeJson } from './codec.js';
import { currentTraceparent } from '#libs/telemetry';

/** Asks another service a synchronous question over core NATS request/reply. */
export class RpcClient {
  constructor(private readonly nc: NatsConnection, private readonly timeoutMs = 5000) {}

  async call<N extends RpcName>(name: N, req: RpcMap[N]['req']): Promise<RpcMap[N]['res']> {
    const h = natsHeaders();
    const tp = currentTraceparent();
    if (tp) h.set(HEADERS.traceparent, tp);
    let reply: RpcReply<N>;
    try {
      const msg = await this.nc.request(rpcSubject(name), encodeJson(req), { timeout: this.timeoutMs, headers: h });
      reply = decodeJson<RpcReply<N>>(msg.data);
    } catch (e) {
      if (e instanceof natsErrors.NoRespondersError || e instanceof natsErrors.TimeoutError || (e as Error).name === 'RequestError') {
        throw unavailable(`the service answering ${name} is unavailable`, e);
      }
      throw e;
    }
    if (!reply.ok) throw AgentmeshError.fromWire(reply.error);
    return reply.value;
  }
}

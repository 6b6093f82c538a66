import { connect, type NatsConnection } from '@nats-io/transport-node';

/**
 * Connects to NATS, retrying forever on loss (the services wait for the broker, they do not die).
 * `noAsyncTraces`: the client would otherwise build two Error objects with stack traces for every
 * request, JetStream publishes included; that was the largest CPU cost per step in profiles.
 */
export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  return connect({
    servers: url.split(','),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    timeout: 5000,
    noAsyncTraces: true,
  });
}

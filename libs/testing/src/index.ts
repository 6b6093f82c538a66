export { freePort, startNatsServer, type NatsServerHandle } from './nats-server.js';

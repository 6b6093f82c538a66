export { connectNats } from './connection.js';
export { provision, openBucket, type ProvisionOptions } from './provision.js';
export { CommandBus } from './publisher.js';
export { RpcClient } from './rpc.js';
export { JetStreamServer, JsContext, MessageController, OnCommand, OnRpc, RethrowRpcFilter, type JetStreamServerOptions } from './server.js';
export { RetryLaterError, TerminalMessageError, fateOf, type MessageFate } from './errors.js';
export { encodeJson, decodeJson } from './codec.js';
export { startService, runServiceMain, NATS, CONFIG, LOGGER, type ServiceDefinition, type RunningService } from './bootstrap.js';
export { JetStreamPublisher, JetStreamPublishError, publisherFor, WRONG_LAST_SEQUENCE, type PubAck } from './js-publisher.js';

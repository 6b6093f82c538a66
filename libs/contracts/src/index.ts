export * from './ids.js';
export * from './domain.js';
export * from './errors.js';
export * from './events.js';
export * from './commands.js';
export * from './rpc.js';
export * from './channels.js';

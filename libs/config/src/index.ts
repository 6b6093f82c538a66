export { loadConfig, ConfigError, type AppConfig } from './config.js';
export { SERVICES, SERVICE_NAMES, type ServiceName } from './services.js';

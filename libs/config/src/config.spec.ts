import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('gives each service its catalogue port and documented defaults', () => {
    const cfg = loadConfig('gateway', {});
    expect(cfg.httpPort).toBe(8080);
    expect(cfg.grpcPort).toBe(50051);
    expect(loadConfig('tool-runner', {}).httpPort).toBe(8082);
    expect(cfg.ackWaitMs).toBe(30_000);
    expect(Object.isFrozen(cfg)).toBe(true);
  });

  it('parses durations and per-service port overrides', () => {
    const cfg = loadConfig('orchestrator', { AGENTMESH_ACK_WAIT: '2.5s', ORCHESTRATOR_PORT: '9001' });
    expect(cfg.ackWaitMs).toBe(2500);
    expect(cfg.httpPort).toBe(9001);
  });

  it('lists every bad key at once', () => {
    let err: unknown;
    try {
      loadConfig('gateway', { GATEWAY_PORT: 'eighty', AGENTMESH_ACK_WAIT: 'soon', LOG_LEVEL: 'loud' });
    } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toContain('GATEWAY_PORT');
    expect(problems).toContain('AGENTMESH_ACK_WAIT');
    expect(problems).toContain('LOG_LEVEL');
  });
});

import { inspect } from 'node:util';
import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from './config.js';
import { parseModelRouting, parseReplicas, parseReplicaSpec } from './inference.js';

describe('the inference-router configuration', () => {
  it('has documented defaults and no replicas (simulators) when nothing is set', () => {
    const inf = loadConfig('inference-router', {}).inference!;
    expect(inf.replicas).toBeUndefined();
    expect(inf.modelRouting).toBeUndefined();
    expect(inf.token).toBeUndefined();
    expect(inf).toMatchObject({ loadFactor: 1.25, pinTtlMs: 600_000, pinGcMs: 3_600_000, admissionWaitMs: 2000, admissionQueue: 1000, healthIntervalMs: 2000, upstreamTimeoutMs: 120_000 });
    expect(inf.simulators).toEqual({ count: 3, capacity: 64, timeScale: 1, zeroLatency: false });
    expect(inf.policy).toBe('bounded-sticky');
  });

  it('takes a routing policy for benchmarks and a simulator script file', () => {
    const inf = loadConfig('inference-router', { AGENTMESH_ROUTER_POLICY: 'round-robin', AGENTMESH_SIM_SCRIPT: '/tmp/script.json' }).inference!;
    expect(inf.policy).toBe('round-robin');
    expect(inf.simulators.script).toBe('/tmp/script.json');
    expect(() => loadConfig('inference-router', { AGENTMESH_ROUTER_POLICY: 'random' })).toThrow(/AGENTMESH_ROUTER_POLICY/);
  });

  it('is read only for the inference-router', () => {
    expect(loadConfig('gateway', { AGENTMESH_REPLICAS: 'not json' }).inference).toBeUndefined();
  });

  it('parses AGENTMESH_REPLICAS with defaults, inline keys kept apart, and keys by reference', () => {
    const cfg = loadConfig('inference-router', {
      AGENTMESH_REPLICAS: JSON.stringify([
        { id: 'vllm-a', url: 'http://10.0.0.5:8000/', models: ['llama-70b'], capacity: 48 },
        { id: 'openai', url: 'https://api.openai.com/v1', models: ['gpt-4o', 'gpt-4o-mini'], apiKeyRef: 'openai', health: '/v1/models', weight: 2 },
        { id: 'claude', url: 'https://api.anthropic.com', kind: 'anthropic', models: ['claude-sonnet-4'], apiKey: 'sk-ant-secret', health: 'none' },
      ]),
      AGENTMESH_PROVIDER_KEYS: JSON.stringify({ openai: 'sk-openai-secret' }),
      AGENTMESH_ROUTER_LOAD_FACTOR: '1.5',
      AGENTMESH_ROUTER_PIN_TTL: '90s',
      AGENTMESH_ROUTER_ADMISSION_WAIT: '250ms',
      AGENTMESH_INFERENCE_TOKEN: 'a-long-enough-service-token',
    });
    const inf = cfg.inference!;
    expect(inf.replicas).toEqual([
      { id: 'vllm-a', url: 'http://10.0.0.5:8000', kind: 'openai', models: ['llama-70b'], capacity: 48, weight: 1, health: '/health' },
      { id: 'openai', url: 'https://api.openai.com/v1', kind: 'openai', models: ['gpt-4o', 'gpt-4o-mini'], capacity: null, weight: 2, health: '/v1/models', apiKeyRef: 'openai' },
      { id: 'claude', url: 'https://api.anthropic.com', kind: 'anthropic', models: ['claude-sonnet-4'], capacity: null, weight: 1, health: 'none', apiKeyRef: 'replica:claude' },
    ]);
    expect(inf.providerKeys.openai.reveal()).toBe('sk-openai-secret');
    expect(inf.providerKeys['replica:claude'].reveal()).toBe('sk-ant-secret');
    expect(inf.token?.reveal()).toBe('a-long-enough-service-token');
    expect({ loadFactor: inf.loadFactor, pinTtlMs: inf.pinTtlMs, admissionWaitMs: inf.admissionWaitMs }).toEqual({ loadFactor: 1.5, pinTtlMs: 90_000, admissionWaitMs: 250 });
    // secrets never show when the config is logged or serialised
    const shown = `${JSON.stringify(cfg)} ${inspect(cfg, { depth: 10 })}`;
    expect(shown).not.toContain('sk-ant-secret');
    expect(shown).not.toContain('sk-openai-secret');
    expect(shown).not.toContain('a-long-enough-service-token');
  });

  it('lists every problem of bad replicas and knobs at once', () => {
    let err: unknown;
    try {
      loadConfig('inference-router', {
        AGENTMESH_REPLICAS: JSON.stringify([
          { id: 'a', url: 'ftp://x', models: [] },
          { id: 'a', url: 'http://user:pw@h', models: ['m'], capacity: -1, kind: 'grpc', colour: 'red' },
          { id: 'b', url: 'http://h', models: ['m'], apiKeyRef: 'missing' },
        ]),
        AGENTMESH_ROUTER_LOAD_FACTOR: '0.5',
        AGENTMESH_ROUTER_PIN_TTL: '10m',
        AGENTMESH_ROUTER_PIN_GC: '1m',
        AGENTMESH_INFERENCE_TOKEN: 'short',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const fragment of [
      'AGENTMESH_REPLICAS[0].url', 'AGENTMESH_REPLICAS[0].models', 'AGENTMESH_REPLICAS[1].url must not carry credentials', 'AGENTMESH_REPLICAS[1].capacity',
      'AGENTMESH_REPLICAS[1].kind', 'unknown key "colour"', 'AGENTMESH_REPLICAS[2].apiKeyRef "missing"', 'AGENTMESH_ROUTER_LOAD_FACTOR',
      'AGENTMESH_ROUTER_PIN_GC', 'AGENTMESH_INFERENCE_TOKEN',
    ]) expect(problems).toContain(fragment);
  });

  it('rejects repeated replica ids, non-arrays and non-JSON', () => {
    expect(parseReplicas(JSON.stringify([{ id: 'a', url: 'http://h', models: ['m'] }, { id: 'a', url: 'http://g', models: ['m'] }]), undefined).problems).toEqual(['AGENTMESH_REPLICAS[1].id "a" is repeated']);
    expect(parseReplicas('{}', undefined).problems).toEqual(['AGENTMESH_REPLICAS must be a non-empty JSON array of replicas']);
    expect(parseReplicas('[', undefined).problems).toEqual(['AGENTMESH_REPLICAS must be JSON']);
    expect(parseReplicas(undefined, '{"replica:x": "k"}').problems).toEqual(['AGENTMESH_PROVIDER_KEYS: bad name "replica:x"']);
  });

  it('accepts an admin API body only with keys by reference, its id from the path', () => {
    const ok = parseReplicaSpec({ url: 'http://h:1', models: ['*'], capacity: 2 }, 'body', { id: 'r1' });
    expect(ok.spec).toEqual({ id: 'r1', url: 'http://h:1', kind: 'openai', models: ['*'], capacity: 2, weight: 1, health: '/health' });
    expect(parseReplicaSpec({ url: 'http://h', models: ['m'], apiKey: 'k' }, 'body', { id: 'r1' }).problems).toEqual(['body.apiKey is not accepted here; name a provider key with apiKeyRef']);
    expect(parseReplicaSpec({ id: 'other', url: 'http://h', models: ['m'] }, 'body', { id: 'r1' }).problems).toEqual(['body.id does not match the path']);
  });

  it('parses model routing with default rules and checks its shape', () => {
    const { routing } = parseModelRouting(JSON.stringify({ cheapModel: 'gpt-4o-mini', frontierModel: 'gpt-4o' }));
    expect(routing).toMatchObject({ cheapModel: 'gpt-4o-mini', frontierModel: 'gpt-4o', fallback: 'frontier' });
    expect(routing!.rules.map((r) => r.name)).toContain('planner-easy');
    const custom = parseModelRouting(JSON.stringify({ cheapModel: 'a', frontierModel: 'b', fallback: 'cheap', rules: [{ name: 'hard', when: { hint: 'hard' }, use: 'frontier' }] }));
    expect(custom.routing?.rules).toEqual([{ name: 'hard', when: { hint: 'hard' }, use: 'frontier' }]);
    expect(parseModelRouting(JSON.stringify({ cheapModel: '', rules: [{ use: 'gold' }], fallback: 'x', extra: 1 })).problems).toEqual([
      'AGENTMESH_MODEL_ROUTING: unknown key "extra"',
      'AGENTMESH_MODEL_ROUTING.cheapModel must be a model name',
      'AGENTMESH_MODEL_ROUTING.frontierModel must be a model name',
      'AGENTMESH_MODEL_ROUTING.fallback must be cheap or frontier',
      'AGENTMESH_MODEL_ROUTING.rules must be an array of {name, when, use: cheap|frontier}',
    ]);
  });
});

import { describe, expect, it } from '@jest/globals';
import { digestOf, type JsonObject } from '#libs/contracts';
import { toPbStruct, toPbValue } from '#libs/sdk';
import { agentBodyFromPb, restEnum, rolesFromPb, startRunBodyFromPb, toolBodyFromPb } from './mapping.js';

describe('proto requests as REST bodies', () => {
  it('turns PutToolRequest into the very body REST receives, leaving out what was not given', () => {
    const body = toolBodyFromPb({
      tenant: 'acme', name: 'echo', version: '1', description: '', input_schema: toPbStruct({ type: 'object' }),
      risk_tier: 'RISK_TIER_READ', transport: { builtin: { name: 'echo' }, kind: 'builtin' }, egress: [], timeout_ms: 0, credential: null,
    });
    expect(body).toEqual({ version: '1', inputSchema: { type: 'object' }, riskTier: 'read', transport: { kind: 'builtin', name: 'echo' } });
  });

  it('maps every transport kind and the credential', () => {
    expect(toolBodyFromPb({ transport: { http: { url: 'https://x.example/t' } }, egress: ['x.example'], timeout_ms: 500, credential: { name: 'c', scopes: [] } }))
      .toEqual({ transport: { kind: 'http', url: 'https://x.example/t' }, egress: ['x.example'], timeoutMs: 500, credential: { name: 'c' } });
    expect(toolBodyFromPb({ transport: { mcp: { url: 'https://m.example', tool: 'search' } } }).transport).toEqual({ kind: 'mcp', url: 'https://m.example', tool: 'search' });
    expect(toolBodyFromPb({ transport: { http: { url: '' } } }).transport).toEqual({ kind: 'http' });
  });

  it('gives the same agent body, hence the same digest, as the REST body of the same definition', () => {
    const rest: JsonObject = {
      version: '1', planner: 'graph', tools: ['echo'], limits: { maxSteps: 5 },
      steps: [{ id: 'a', tool: 'echo', args: { text: '{{input.x}}' } }, { id: 'b', tool: 'echo' }],
      output: { r: '{{steps.a.result}}' },
    };
    const fromGrpc = agentBodyFromPb({
      tenant: 'acme', name: 'hello', version: '1', planner: 'graph', model: '', instructions: '', tools: ['echo'],
      limits: { max_steps: 5, budget_usd: 0, approval_timeout_seconds: 0 },
      steps: [{ id: 'a', tool: 'echo', args: toPbStruct({ text: '{{input.x}}' }) }, { id: 'b', tool: 'echo', args: null }],
      output: toPbValue({ r: '{{steps.a.result}}' }),
    });
    expect(fromGrpc).toEqual(rest);
    expect(digestOf(fromGrpc)).toBe(digestOf(rest));
  });

  it('keeps an empty step list for graph agents, so the schema names the field', () => {
    expect(agentBodyFromPb({ version: '1', planner: 'graph', steps: [] }).steps).toEqual([]);
    expect(agentBodyFromPb({ version: '1', planner: 'react', model: 'm', steps: [] }).steps).toBeUndefined();
  });

  it('tells an unset run input from a JSON null input', () => {
    expect(startRunBodyFromPb({ agent: 'hello', input: null, session_id: '', metadata: {} })).toEqual({ agent: 'hello' });
    expect(startRunBodyFromPb({ agent: 'hello', input: toPbValue(null), metadata: { a: 'b' } })).toEqual({ agent: 'hello', input: null, metadata: { a: 'b' } });
  });

  it('reads enums as REST strings: zero is "not given", unknown values reach the schema as they are', () => {
    expect(restEnum('RISK_TIER', 'RISK_TIER_IRREVERSIBLE')).toBe('irreversible');
    expect(restEnum('RISK_TIER', 'RISK_TIER_UNSPECIFIED')).toBeUndefined();
    expect(restEnum('RISK_TIER', 0)).toBeUndefined();
    expect(restEnum('RISK_TIER', 9)).toBe('9');
    expect(rolesFromPb(['ROLE_OWNER', 'ROLE_VIEWER', 'ROLE_OWNER', 'ROLE_UNSPECIFIED'])).toEqual(['owner', 'viewer', 'ROLE_UNSPECIFIED']);
  });
});

/**
 * JSON Schemas (draft 2020-12 subset, compiled with Ajv) of the public request bodies. The gateway
 * validates against them; services re-validate what they receive over NATS with the same ones.
 */
const name = { type: 'string', pattern: '^[a-zA-Z][a-zA-Z0-9_-]{0,63}$' } as const;
const version = { type: 'string', pattern: '^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$' } as const;
const hostEntry = { type: 'string', pattern: '^(\\*\\.)?[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\\[[0-9a-fA-F:]+\\](:[0-9]{1,5})?$' } as const;

export const toolBodySchema = {
  $id: 'agentmesh/tool-body',
  type: 'object',
  additionalProperties: false,
  required: ['version', 'inputSchema', 'riskTier', 'transport'],
  properties: {
    version,
    description: { type: 'string', maxLength: 4000 },
    inputSchema: { type: 'object' },
    riskTier: { enum: ['read', 'write', 'irreversible'] },
    transport: {
      oneOf: [
        { type: 'object', additionalProperties: false, required: ['kind', 'url'], properties: { kind: { const: 'http' }, url: { type: 'string', pattern: '^https?://', maxLength: 2048 } } },
        { type: 'object', additionalProperties: false, required: ['kind', 'url', 'tool'], properties: { kind: { const: 'mcp' }, url: { type: 'string', pattern: '^https?://', maxLength: 2048 }, tool: { type: 'string', minLength: 1, maxLength: 128 } } },
        { type: 'object', additionalProperties: false, required: ['kind', 'name'], properties: { kind: { const: 'builtin' }, name: { type: 'string', minLength: 1, maxLength: 64 } } },
      ],
    },
    egress: { type: 'array', items: hostEntry, maxItems: 64 },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 900_000 },
    credential: {
      type: 'object', additionalProperties: false, required: ['name'],
      properties: { name, scopes: { type: 'array', items: { type: 'string', maxLength: 256 }, maxItems: 64 } },
    },
  },
} as const;

const graphStep = {
  type: 'object', additionalProperties: false, required: ['id', 'tool'],
  properties: { id: name, tool: name, args: { type: 'object' } },
} as const;

export const agentBodySchema = {
  $id: 'agentmesh/agent-body',
  type: 'object',
  additionalProperties: false,
  required: ['version', 'planner'],
  properties: {
    version,
    planner: { type: 'string', pattern: '^[a-zA-Z][a-zA-Z0-9_.-]{0,63}$' },
    model: { type: 'string', maxLength: 128 },
    instructions: { type: 'string', maxLength: 100_000 },
    tools: { type: 'array', maxItems: 128, items: { type: 'string', pattern: '^[a-zA-Z][a-zA-Z0-9_-]{0,63}(@[0-9A-Za-z][0-9A-Za-z._-]{0,31})?$' } },
    limits: {
      type: 'object', additionalProperties: false,
      properties: {
        maxSteps: { type: 'integer', minimum: 1, maximum: 10_000 },
        budgetUsd: { type: 'number', exclusiveMinimum: 0 },
        approvalTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 604_800 },
        requireApprovalFor: { type: 'array', uniqueItems: true, maxItems: 3, items: { enum: ['read', 'write', 'irreversible'] } },
      },
    },
    steps: { type: 'array', items: graphStep, maxItems: 1000 },
    output: {},
  },
  if: { properties: { planner: { const: 'graph' } } },
  then: { required: ['steps'], properties: { steps: { minItems: 1 } } },
} as const;

export const startRunBodySchema = {
  $id: 'agentmesh/start-run-body',
  type: 'object',
  additionalProperties: false,
  required: ['agent'],
  properties: {
    agent: { type: 'string', pattern: '^[a-zA-Z][a-zA-Z0-9_-]{0,63}(@[0-9A-Za-z][0-9A-Za-z._-]{0,31})?$' },
    input: {},
    sessionId: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$' },
    metadata: { type: 'object', maxProperties: 32, additionalProperties: { type: 'string', maxLength: 512 } },
  },
} as const;

export const createTenantBodySchema = {
  $id: 'agentmesh/create-tenant-body',
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {
    id: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{1,62}$' },
    name: { type: 'string', maxLength: 200 },
  },
} as const;

export const ROLES = ['owner', 'developer', 'operator', 'approver', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

export const issueKeyBodySchema = {
  $id: 'agentmesh/issue-key-body',
  type: 'object',
  additionalProperties: false,
  required: ['roles'],
  properties: {
    name: { type: 'string', maxLength: 200 },
    roles: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ROLES } },
  },
} as const;

export const cancelRunBodySchema = {
  $id: 'agentmesh/cancel-run-body',
  type: 'object',
  additionalProperties: false,
  properties: { reason: { type: 'string', maxLength: 1000 } },
} as const;

/** POST /v1/tenants/{t}/approvals/{id}. */
export const decideApprovalBodySchema = {
  $id: 'agentmesh/decide-approval-body',
  type: 'object',
  additionalProperties: false,
  required: ['decision'],
  properties: {
    decision: { enum: ['approve', 'deny'] },
    reason: { type: 'string', maxLength: 1024 },
  },
} as const;

/**
 * PUT /v1/tenants/{t}/policy: the tenant's own rules, replacing the stored ones. `revision` (from
 * GET) makes the write conditional: 409 when the policy changed since. Rules are checked further
 * by libs/policy (operation ids, condition syntax); the tenant is the path's, never the body's.
 */
export const policyBodySchema = {
  $id: 'agentmesh/policy-body',
  type: 'object',
  additionalProperties: false,
  required: ['rules'],
  properties: {
    revision: { type: 'integer', minimum: 0 },
    rules: {
      type: 'array',
      maxItems: 500,
      items: {
        oneOf: [
          {
            type: 'object', additionalProperties: false, required: ['kind', 'subject', 'operation', 'effect'],
            properties: {
              kind: { const: 'permission' },
              subject: { type: 'string', minLength: 1, maxLength: 128 },
              operation: { type: 'string', minLength: 1, maxLength: 64 },
              access: { enum: ['read', 'write', '*'] },
              when: { type: 'string', minLength: 1, maxLength: 512 },
              effect: { enum: ['allow', 'deny'] },
            },
          },
          {
            type: 'object', additionalProperties: false, required: ['kind', 'subject', 'role'],
            properties: {
              kind: { const: 'role' },
              subject: { type: 'string', minLength: 1, maxLength: 128 },
              role: { type: 'string', minLength: 1, maxLength: 128 },
            },
          },
        ],
      },
    },
  },
} as const;

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_FILES, PROTO_PACKAGE, protoDir, protoLoaderOptions } from './proto-path.js';

/** The ten services and exactly the methods each one must have: every REST operation has its twin. */
const EXPECTED_SERVICES: Record<string, string[]> = {
  Tenants: ['CreateTenant', 'IssueApiKey', 'RevokeApiKey'],
  Tools: ['PutTool', 'ListTools', 'GetTool', 'DisableTool', 'EnableTool'],
  Agents: ['PutAgent', 'GetAgent', 'ListAgents'],
  Runs: ['StartRun', 'GetRun', 'ListRuns', 'CancelRun', 'WatchRun'],
  Approvals: ['ListApprovals', 'DecideApproval'],
  Credentials: ['PutCredential', 'ListCredentials', 'RevokeCredential'],
  Budgets: ['GetBudget', 'PutBudget', 'GetUsage'],
  Audit: ['ListAudit'],
  Policies: ['GetPolicy', 'PutPolicy'],
  Sessions: ['GetSession'],
};

/** Methods that are not scoped to one tenant (the platform admin creates tenants). */
const NOT_TENANT_SCOPED = new Set(['Tenants.CreateTenant']);

interface FieldDescriptor {
  name: string;
  type: string;
  typeName: string;
  label: string;
}
interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
}

function messageType(def: protoLoader.PackageDefinition, fullName: string): MessageDescriptor {
  const entry = def[fullName] as protoLoader.MessageTypeDefinition<object, object> | undefined;
  if (entry === undefined || entry.format !== 'Protocol Buffer 3 DescriptorProto') {
    throw new Error(`message ${fullName} is not defined`);
  }
  return entry.type as MessageDescriptor;
}

function field(message: MessageDescriptor, name: string): FieldDescriptor | undefined {
  return message.field.find((f) => f.name === name);
}

/** Strips the leading dot protobufjs may put on fully qualified type names. */
function typeName(f: FieldDescriptor): string {
  return f.typeName.replace(/^\./, '');
}

describe('agentmesh.v1 gRPC contract', () => {
  let def: protoLoader.PackageDefinition;
  let v1: grpc.GrpcObject;

  beforeAll(() => {
    def = protoLoader.loadSync([...PROTO_FILES], protoLoaderOptions());
    const root = grpc.loadPackageDefinition(def);
    v1 = (root.agentmesh as grpc.GrpcObject).v1 as grpc.GrpcObject;
  });

  it('finds the proto folder by walking up from the module', () => {
    expect(protoDir()).toMatch(/[/\\]proto$/);
    for (const file of PROTO_FILES) {
      expect(readFileSync(join(protoDir(), file), 'utf8')).toContain(`package ${PROTO_PACKAGE};`);
    }
  });

  it('defines exactly the ten services, each with exactly the expected methods', () => {
    const services = Object.keys(def)
      .filter((name) => name.startsWith(`${PROTO_PACKAGE}.`))
      .filter((name) => !('format' in (def[name] as object)))
      .map((name) => name.slice(PROTO_PACKAGE.length + 1))
      .sort();
    expect(services).toEqual(Object.keys(EXPECTED_SERVICES).sort());

    for (const [service, methods] of Object.entries(EXPECTED_SERVICES)) {
      const ctor = v1[service] as grpc.ServiceClientConstructor | undefined;
      expect(typeof ctor).toBe('function');
      expect(Object.keys(ctor!.service).sort()).toEqual([...methods].sort());
      for (const method of methods) {
        expect(ctor!.service[method]!.path).toBe(`/${PROTO_PACKAGE}.${service}/${method}`);
      }
    }
  });

  it('makes WatchRun a server stream of RunEvent and every other method unary', () => {
    for (const [service, methods] of Object.entries(EXPECTED_SERVICES)) {
      const ctor = v1[service] as grpc.ServiceClientConstructor;
      for (const method of methods) {
        const m = ctor.service[method]!;
        const watch = service === 'Runs' && method === 'WatchRun';
        expect({ method, requestStream: m.requestStream, responseStream: m.responseStream }).toEqual({
          method,
          requestStream: false,
          responseStream: watch,
        });
      }
    }
    const watch = (def[`${PROTO_PACKAGE}.Runs`] as protoLoader.ServiceDefinition).WatchRun!;
    expect((watch.responseType.type as MessageDescriptor).name).toBe('RunEvent');
    expect(field(watch.requestType.type as MessageDescriptor, 'after_seq')?.type).toBe('TYPE_UINT64');
  });

  it('puts a string tenant field on the request of every tenant-scoped method', () => {
    for (const [service, methods] of Object.entries(EXPECTED_SERVICES)) {
      const svc = def[`${PROTO_PACKAGE}.${service}`] as protoLoader.ServiceDefinition;
      for (const method of methods) {
        const request = svc[method]!.requestType.type as MessageDescriptor;
        const tenant = field(request, 'tenant');
        if (NOT_TENANT_SCOPED.has(`${service}.${method}`)) {
          expect({ method, tenant }).toEqual({ method, tenant: undefined });
        } else {
          expect({ method, type: tenant?.type }).toEqual({ method, type: 'TYPE_STRING' });
        }
      }
    }
  });

  it('shapes RunEvent as the journal event: seq, run_id, tenant_id, type, at, step, data', () => {
    const event = messageType(def, `${PROTO_PACKAGE}.RunEvent`);
    const shape = event.field.map((f) => [f.name, f.type, typeName(f)]);
    expect(shape).toEqual([
      ['seq', 'TYPE_UINT64', ''],
      ['run_id', 'TYPE_STRING', ''],
      ['tenant_id', 'TYPE_STRING', ''],
      ['type', 'TYPE_STRING', ''],
      ['at', 'TYPE_MESSAGE', 'google.protobuf.Timestamp'],
      ['step', 'TYPE_UINT32', ''],
      ['data', 'TYPE_MESSAGE', 'google.protobuf.Struct'],
    ]);
  });

  it('resolves the well-known types and uses them for free-form JSON', () => {
    const run = messageType(def, `${PROTO_PACKAGE}.Run`);
    expect(typeName(field(run, 'output')!)).toBe('google.protobuf.Value');
    expect(typeName(field(run, 'created_at')!)).toBe('google.protobuf.Timestamp');
    const start = messageType(def, `${PROTO_PACKAGE}.StartRunRequest`);
    expect(typeName(field(start, 'input')!)).toBe('google.protobuf.Value');
    const put = messageType(def, `${PROTO_PACKAGE}.PutToolRequest`);
    expect(typeName(field(put, 'input_schema')!)).toBe('google.protobuf.Struct');
    expect(def['google.protobuf.Struct']).toBeDefined();
  });

  it('mirrors the REST run statuses in RunStatus', () => {
    const status = def[`${PROTO_PACKAGE}.RunStatus`] as protoLoader.EnumTypeDefinition;
    const values = (status.type as { value: { name: string; number: number }[] }).value.map((v) => v.name);
    expect(values).toEqual([
      'RUN_STATUS_UNSPECIFIED',
      'RUN_STATUS_QUEUED',
      'RUN_STATUS_RUNNING',
      'RUN_STATUS_WAITING_APPROVAL',
      'RUN_STATUS_COMPLETED',
      'RUN_STATUS_FAILED',
      'RUN_STATUS_CANCELLED',
    ]);
  });

  it('paginates ListRuns with status, agent, limit and cursor, answering next_cursor', () => {
    const request = messageType(def, `${PROTO_PACKAGE}.ListRunsRequest`);
    expect(request.field.map((f) => f.name)).toEqual(['tenant', 'status', 'agent', 'limit', 'cursor']);
    const response = messageType(def, `${PROTO_PACKAGE}.ListRunsResponse`);
    expect(field(response, 'next_cursor')?.type).toBe('TYPE_STRING');
  });

  it('never returns credential secret material from the Credentials service', () => {
    const svc = def[`${PROTO_PACKAGE}.Credentials`] as protoLoader.ServiceDefinition;
    const seen = new Set<string>();
    const visit = (fullName: string): void => {
      if (seen.has(fullName) || !fullName.startsWith(`${PROTO_PACKAGE}.`)) return;
      seen.add(fullName);
      for (const f of messageType(def, fullName).field) {
        expect({ in: fullName, field: f.name }).not.toEqual({ in: fullName, field: expect.stringMatching(/secret/) });
        if (f.type === 'TYPE_MESSAGE') visit(typeName(f));
      }
    };
    for (const method of Object.values(svc)) {
      visit(`${PROTO_PACKAGE}.${(method.responseType.type as MessageDescriptor).name}`);
    }
    expect(seen.size).toBeGreaterThan(1);
  });

  it('documents every service, rpc, message, enum, oneof, field and enum value with a comment', () => {
    const declaration =
      /^\s*(?:(?:service|rpc|message|enum|oneof)\s+\w+|(?:repeated\s+|optional\s+)?(?:map<[^>]+>|[\w.]+)\s+\w+\s*=\s*\d+\s*;|[A-Z][A-Z0-9_]*\s*=\s*-?\d+\s*;)/;
    const undocumented: string[] = [];
    for (const file of PROTO_FILES) {
      const lines = readFileSync(join(protoDir(), file), 'utf8').split('\n');
      lines.forEach((line, i) => {
        if (!declaration.test(line) || line.includes('//')) return;
        const previous = (lines[i - 1] ?? '').trim();
        if (!previous.startsWith('//')) undocumented.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(undocumented).toEqual([]);
  });
});

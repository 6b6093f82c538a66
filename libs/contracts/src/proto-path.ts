import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Options } from '@grpc/proto-loader';

/** The protobuf package every agentmesh service lives in. */
export const PROTO_PACKAGE = 'agentmesh.v1';

/**
 * The gRPC contract files, relative to {@link protoDir}. Load them with `protoDir()` as the
 * include dir so that their `import "agentmesh/v1/common.proto"` lines resolve; the
 * `google/protobuf/*` well-known types are bundled with protobufjs (used by @grpc/proto-loader).
 */
export const PROTO_FILES: readonly string[] = Object.freeze([
  'agentmesh/v1/common.proto',
  'agentmesh/v1/tenants.proto',
  'agentmesh/v1/tools.proto',
  'agentmesh/v1/agents.proto',
  'agentmesh/v1/runs.proto',
  'agentmesh/v1/approvals.proto',
  'agentmesh/v1/credentials.proto',
  'agentmesh/v1/budgets.proto',
  'agentmesh/v1/audit.proto',
  'agentmesh/v1/policies.proto',
  'agentmesh/v1/sessions.proto',
]);

/** Options for `@grpc/proto-loader` that the gateway and tests share. */
export function protoLoaderOptions(): Options {
  return { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [protoDir()] };
}

/** Thrown when no `proto/agentmesh/v1` folder exists above this module. */
export class ProtoDirNotFoundError extends Error {
  override name = 'ProtoDirNotFoundError';
  readonly code = 'proto_dir_not_found';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

let cached: string | undefined;

/**
 * Absolute path of the repository's `proto` folder. Found by walking up from this module's
 * directory, so it works from the sources (libs/contracts/src) and from the build
 * (dist/libs/contracts/src) alike.
 */
export function protoDir(): string {
  if (cached !== undefined) return cached;
  const start = dirname(fileURLToPath(import.meta.url));
  let dir = start;
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'agentmesh', 'v1'))) {
      cached = candidate;
      return candidate;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new ProtoDirNotFoundError(`no proto/agentmesh/v1 folder found above ${start}`);
    }
    dir = parent;
  }
}

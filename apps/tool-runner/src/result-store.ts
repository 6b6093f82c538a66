import { createHash } from 'node:crypto';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { AgentmeshError, invalid, notFound, OBJECT_STORES, type JsonValue, type StoredResult } from '#libs/contracts';
import { NATS } from '#libs/messaging';

/** Results whose JSON is larger than this go to the object store; the journal gets a preview. */
export const OFFLOAD_THRESHOLD_BYTES = 64 * 1024;
/** Hard cap of a tool result (JSON bytes); larger results fail with `result_too_large`. */
export const MAX_RESULT_BYTES = 16 * 1024 * 1024;
/** Characters of the result's JSON text kept in the preview. */
export const PREVIEW_CHARS = 1024;
/** Room left in a reply for everything but the result itself. */
const REPLY_OVERHEAD = 4096;

/** The small stand-in for an offloaded result in tool.result / tool.completed. */
export function previewOf(ref: string, text: string): JsonValue {
  return { resultRef: ref, bytes: Buffer.byteLength(text), preview: text.slice(0, PREVIEW_CHARS) };
}

/**
 * Large tool results in the JetStream object store OBJECT_STORES.results, named `<tenant>/<callKey>`
 * and stamped with the tenant (object metadata) so only that tenant reads them back.
 */
@Injectable()
export class ResultStore implements OnModuleInit {
  private os!: ObjectStore;

  constructor(@Inject(NATS) private readonly nc: NatsConnection) {}

  async onModuleInit(): Promise<void> {
    this.os = await new Objm(this.nc).open(OBJECT_STORES.results);
  }

  static refOf(tenantId: string, callKey: string): string {
    return `${tenantId}/${callKey}`;
  }

  /** Stores a result's JSON text; idempotent (the same call stores the same object again). */
  async offload(tenantId: string, callKey: string, json: string): Promise<string> {
    const ref = ResultStore.refOf(tenantId, callKey);
    const data = Buffer.from(json, 'utf8');
    await this.os.putBlob({
      name: ref,
      description: 'tool result (JSON)',
      metadata: { tenant: tenantId, callKey, sha256: createHash('sha256').update(data).digest('hex'), contentType: 'application/json' },
    }, data);
    return ref;
  }

  /** Reads a result of `tenantId`; another tenant's ref, or an unknown one, is not found. */
  async read(tenantId: string, ref: string, offset?: number, length?: number): Promise<StoredResult> {
    if (typeof ref !== 'string' || !ref.startsWith(`${tenantId}/`)) throw notFound(`result ${String(ref)}`);
    const info = await this.os.info(ref);
    if (!info || info.deleted || info.metadata?.tenant !== tenantId) throw notFound(`result ${ref}`);
    const data = await this.os.getBlob(ref);
    if (!data) throw notFound(`result ${ref}`);
    const base = { ref, bytes: data.byteLength, sha256: info.metadata?.sha256 ?? createHash('sha256').update(data).digest('hex'), createdAt: info.mtime };
    const maxReply = Math.max(64 * 1024, (this.nc.info?.max_payload ?? 1024 * 1024) - REPLY_OVERHEAD);
    if (offset === undefined) {
      if (data.byteLength > maxReply) {
        throw new AgentmeshError('payload_too_large', `the result is ${data.byteLength} bytes, more than one reply holds (${maxReply}); read it in chunks with offset and length`);
      }
      return { ...base, result: JSON.parse(Buffer.from(data).toString('utf8')) as JsonValue };
    }
    if (!Number.isInteger(offset) || offset < 0 || offset > data.byteLength) throw invalid(`offset must be an integer in [0, ${data.byteLength}]`, [{ field: 'offset', message: 'out of range' }]);
    const maxChunk = Math.floor((maxReply * 3) / 4);
    const want = length === undefined ? maxChunk : length;
    if (!Number.isInteger(want) || want < 1) throw invalid('length must be a positive integer', [{ field: 'length', message: 'must be positive' }]);
    const end = Math.min(data.byteLength, offset + Math.min(want, maxChunk));
    const slice = Buffer.from(data.buffer, data.byteOffset + offset, end - offset);
    return { ...base, chunk: { offset, length: end - offset, base64: slice.toString('base64'), last: end === data.byteLength } };
  }
}

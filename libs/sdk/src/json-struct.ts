import type { JsonObject, JsonValue } from '#libs/contracts';

/**
 * `google.protobuf.Struct`, `Value`, `ListValue` and `Timestamp` in the shape `@grpc/proto-loader`
 * hands over and accepts (with `protoLoaderOptions()`: `oneofs: true` adds the `kind`
 * discriminator, longs are decimal strings), and their conversion to and from plain JSON. Both
 * the gateway's gRPC server and the SDK convert at the edge with these.
 */
export interface PbValue {
  nullValue?: 'NULL_VALUE' | 0;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: PbStruct | null;
  listValue?: PbListValue | null;
  /** The name of the member that is set (proto-loader `oneofs: true`). */
  kind?: string;
}
export interface PbStruct {
  fields?: Record<string, PbValue> | null;
}
export interface PbListValue {
  values?: PbValue[] | null;
}
export interface PbTimestamp {
  seconds?: string | number | null;
  nanos?: number | null;
}

/** A value that has no JSON form (a function, a symbol, a bigint, undefined in an array...). */
export class JsonConversionError extends Error {
  override name = 'JsonConversionError';
  readonly code = 'invalid_argument';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const MAX_DEPTH = 100;

/** Plain JSON → `google.protobuf.Value`. Non-finite numbers become null, as in JSON.stringify. */
export function toPbValue(v: JsonValue, depth = 0): PbValue {
  if (depth > MAX_DEPTH) throw new JsonConversionError(`JSON nested deeper than ${MAX_DEPTH} levels`);
  if (v === null) return { nullValue: 'NULL_VALUE' };
  switch (typeof v) {
    case 'string': return { stringValue: v };
    case 'boolean': return { boolValue: v };
    case 'number': return Number.isFinite(v) ? { numberValue: v } : { nullValue: 'NULL_VALUE' };
    case 'object':
      if (Array.isArray(v)) return { listValue: { values: v.map((x) => toPbValue(x, depth + 1)) } };
      return { structValue: toPbStruct(v, depth + 1) };
    default:
      throw new JsonConversionError(`a ${typeof v} has no JSON form`);
  }
}

/** Plain JSON object → `google.protobuf.Struct`. Keys whose value is undefined are left out (as JSON.stringify does). */
export function toPbStruct(o: JsonObject, depth = 0): PbStruct {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new JsonConversionError('a Struct must be a JSON object');
  const fields: Record<string, PbValue> = {};
  for (const [k, x] of Object.entries(o)) {
    if (x === undefined) continue;
    fields[k] = toPbValue(x, depth);
  }
  return { fields };
}

/** Which member of a Value is set: the `kind` discriminator when present, else the first member given. */
function kindOf(v: PbValue): string | undefined {
  if (typeof v.kind === 'string' && v.kind) return v.kind;
  for (const k of ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'] as const) {
    if (v[k] !== undefined && v[k] !== null) return k;
  }
  return undefined;
}

/**
 * `google.protobuf.Value` → plain JSON. An unset field (null/undefined) is `undefined`; a Value
 * with no member set, and NaN or infinite numbers (which JSON cannot hold), are null.
 */
export function fromPbValue(v: PbValue | null | undefined, depth = 0): JsonValue | undefined {
  if (v === null || v === undefined) return undefined;
  if (depth > MAX_DEPTH) throw new JsonConversionError(`JSON nested deeper than ${MAX_DEPTH} levels`);
  switch (kindOf(v)) {
    case 'numberValue': return Number.isFinite(v.numberValue) ? (v.numberValue as number) : null;
    case 'stringValue': return v.stringValue ?? '';
    case 'boolValue': return v.boolValue ?? false;
    case 'structValue': return fromPbStruct(v.structValue, depth + 1) ?? {};
    case 'listValue': return (v.listValue?.values ?? []).map((x) => fromPbValue(x, depth + 1) ?? null);
    default: return null;
  }
}

/** `google.protobuf.Struct` → plain JSON object; `undefined` when the field is unset. */
export function fromPbStruct(s: PbStruct | null | undefined, depth = 0): JsonObject | undefined {
  if (s === null || s === undefined) return undefined;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(s.fields ?? {})) out[k] = fromPbValue(x, depth) ?? null;
  return out;
}

/** An ISO-8601 instant (or Date) → `google.protobuf.Timestamp`. */
export function toPbTimestamp(at: string | Date): PbTimestamp {
  const ms = typeof at === 'string' ? Date.parse(at) : at.getTime();
  if (!Number.isFinite(ms)) throw new JsonConversionError(`${String(at)} is not an instant`);
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

/** `google.protobuf.Timestamp` → ISO-8601 string (millisecond precision); null when unset. */
export function fromPbTimestamp(ts: PbTimestamp | null | undefined): string | null {
  if (ts === null || ts === undefined) return null;
  const seconds = Number(ts.seconds ?? 0);
  const nanos = Number(ts.nanos ?? 0);
  if (!Number.isFinite(seconds) || !Number.isFinite(nanos)) throw new JsonConversionError('malformed Timestamp');
  return new Date(seconds * 1000 + Math.floor(nanos / 1_000_000)).toISOString();
}

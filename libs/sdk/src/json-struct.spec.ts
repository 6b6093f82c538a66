import { describe, expect, it } from '@jest/globals';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_FILES, protoLoaderOptions, type JsonObject, type JsonValue } from '#libs/contracts';
import type { MethodDefinition } from '@grpc/grpc-js';
import {
  fromPbStruct, fromPbTimestamp, fromPbValue, JsonConversionError, toPbStruct, toPbTimestamp, toPbValue, type PbStruct, type PbValue,
} from './json-struct.js';

const pkg = loadSync([...PROTO_FILES], protoLoaderOptions());
const startRun = (pkg['agentmesh.v1.Runs'] as unknown as Record<string, MethodDefinition<{ input: PbValue | null }, unknown>>).StartRun;
const watchRun = (pkg['agentmesh.v1.Runs'] as unknown as Record<string, MethodDefinition<unknown, { data: PbStruct | null }>>).WatchRun;

/** Through the real protobuf encoding, as a server receives it. */
const overTheWireValue = (v: PbValue | null): PbValue | null => startRun.requestDeserialize(startRun.requestSerialize({ input: v })).input;
const overTheWireStruct = (s: PbStruct): PbStruct | null => watchRun.responseDeserialize(watchRun.responseSerialize({ data: s } as never)).data;

const SAMPLE: JsonObject = {
  text: 'héllo', n: 42, pi: -3.25, yes: true, no: false, nothing: null,
  list: [1, 'two', { three: [3] }, [], null],
  nested: { deeper: { deepest: {} }, empty: [] },
  '': 'empty key', 'dotted.key': 1,
};

describe('Struct and Value conversion', () => {
  it('round-trips plain JSON through google.protobuf.Value on the wire', () => {
    for (const v of [SAMPLE, 'x', 0, 1.5, true, null, [], [null, [1]], {}] as JsonValue[]) {
      expect(fromPbValue(overTheWireValue(toPbValue(v)))).toEqual(v);
    }
  });

  it('round-trips a JSON object through google.protobuf.Struct on the wire', () => {
    expect(fromPbStruct(overTheWireStruct(toPbStruct(SAMPLE)))).toEqual(SAMPLE);
  });

  it('tells an unset field (undefined) from a JSON null', () => {
    expect(overTheWireValue(null)).toBeNull();
    expect(fromPbValue(overTheWireValue(null))).toBeUndefined();
    expect(fromPbValue(overTheWireValue(toPbValue(null)))).toBeNull();
    expect(fromPbStruct(null)).toBeUndefined();
    expect(fromPbStruct({ fields: {} })).toEqual({});
  });

  it('reads Values built by hand without the kind discriminator', () => {
    expect(fromPbValue({ numberValue: 3 })).toBe(3);
    expect(fromPbValue({ structValue: { fields: { a: { stringValue: 'b' } } } })).toEqual({ a: 'b' });
    expect(fromPbValue({ nullValue: 0 })).toBeNull();
    expect(fromPbValue({})).toBeNull();
  });

  it('turns numbers JSON cannot hold into null, as JSON.stringify does', () => {
    expect(toPbValue(Number.NaN)).toEqual({ nullValue: 'NULL_VALUE' });
    expect(fromPbValue({ numberValue: Number.POSITIVE_INFINITY, kind: 'numberValue' })).toBeNull();
  });

  it('leaves out object members that are undefined and refuses what has no JSON form', () => {
    expect(fromPbStruct(toPbStruct({ a: 1, b: undefined } as unknown as JsonObject))).toEqual({ a: 1 });
    expect(() => toPbValue((() => 1) as unknown as JsonValue)).toThrow(JsonConversionError);
    expect(() => toPbStruct([1] as unknown as JsonObject)).toThrow(JsonConversionError);
  });

  it('refuses JSON nested deeper than 100 levels', () => {
    let deep: JsonValue = 'bottom';
    for (let i = 0; i < 150; i++) deep = { d: deep };
    expect(() => toPbValue(deep)).toThrow(JsonConversionError);
  });
});

describe('Timestamp conversion', () => {
  it('round-trips ISO-8601 instants with milliseconds', () => {
    for (const iso of ['2025-01-02T03:04:05.678Z', '1970-01-01T00:00:00.000Z', '1969-12-31T23:59:59.999Z']) {
      expect(fromPbTimestamp(toPbTimestamp(iso))).toBe(iso);
    }
  });

  it('reads seconds sent as decimal strings (longs as strings) and treats unset as null', () => {
    expect(fromPbTimestamp({ seconds: '1700000000', nanos: 5_000_000 })).toBe('2023-11-14T22:13:20.005Z');
    expect(fromPbTimestamp(null)).toBeNull();
    expect(() => toPbTimestamp('not a date')).toThrow(JsonConversionError);
  });
});

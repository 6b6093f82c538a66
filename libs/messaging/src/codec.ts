const enc = new TextEncoder();
const dec = new TextDecoder();

export const encodeJson = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v));
export function decodeJson<T>(data: Uint8Array): T {
  return JSON.parse(dec.decode(data)) as T;
}

/**
 * Fast non-cryptographic 32-bit hashes for ring placement. Strings are hashed as their UTF-8
 * bytes, so the values match other xxHash32 / FNV-1a implementations (and survive a restart).
 */

const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

function utf8(input: string): number {
  if (input.length * 3 > scratch.length) scratch = new Uint8Array(input.length * 3);
  return encoder.encodeInto(input, scratch).written;
}

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function read32(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
}

function round(acc: number, lane: number): number {
  return Math.imul(rotl((acc + Math.imul(lane, P2)) | 0, 13), P1);
}

function xxh32(b: Uint8Array, len: number, seed: number): number {
  let i = 0;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    const limit = len - 16;
    while (i <= limit) {
      v1 = round(v1, read32(b, i));
      v2 = round(v2, read32(b, i + 4));
      v3 = round(v3, read32(b, i + 8));
      v4 = round(v4, read32(b, i + 12));
      i += 16;
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + len) | 0;
  while (i + 4 <= len) {
    h = Math.imul(rotl((h + Math.imul(read32(b, i), P3)) | 0, 17), P4);
    i += 4;
  }
  while (i < len) {
    h = Math.imul(rotl((h + Math.imul(b[i], P5)) | 0, 11), P1);
    i++;
  }
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

/** xxHash32 of a string's UTF-8 bytes or of raw bytes; returns an unsigned 32-bit integer. */
export function xxhash32(input: string | Uint8Array, seed = 0): number {
  if (typeof input === 'string') {
    const len = utf8(input);
    return xxh32(scratch, len, seed >>> 0);
  }
  return xxh32(input, input.length, seed >>> 0);
}

/** FNV-1a (32-bit) of a string's UTF-8 bytes or of raw bytes. Weak avalanche: prefer xxhash32 for rings. */
export function fnv1a32(input: string | Uint8Array): number {
  let b: Uint8Array;
  let len: number;
  if (typeof input === 'string') {
    len = utf8(input);
    b = scratch;
  } else {
    b = input;
    len = input.length;
  }
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) {
    h ^= b[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

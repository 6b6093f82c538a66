import { describe, expect, it } from '@jest/globals';
import { decodeTime } from 'ulid';
import { newUlid } from './ulid.js';
import { RUN_ID } from './ids.js';

describe('newUlid', () => {
  it('makes valid, distinct ULIDs carrying the current time, across pool refills', () => {
    const t0 = Date.now();
    const ids = Array.from({ length: 1000 }, () => newUlid()); // 16 bytes each: several refills of the 4 KiB pool
    expect(new Set(ids).size).toBe(1000);
    for (const id of ids) expect(`run_${id}`).toMatch(RUN_ID);
    expect(decodeTime(ids[0])).toBeGreaterThanOrEqual(t0 - 1);
    expect(decodeTime(ids[999])).toBeLessThanOrEqual(Date.now());
  });
});

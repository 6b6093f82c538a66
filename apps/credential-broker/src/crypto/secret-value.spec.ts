import { describe, expect, it } from '@jest/globals';
import { format, inspect } from 'node:util';
import { REDACTED, SecretValue } from './secret-value.js';

const CANARY = 'canary-sk-4f1c9b2e7d';

describe('SecretValue', () => {
  it('reveals its plaintext only through reveal() and revealBytes()', () => {
    const secret = SecretValue.from(CANARY);
    expect(secret.reveal()).toBe(CANARY);
    expect(secret.revealBytes().toString('utf8')).toBe(CANARY);
    expect(SecretValue.fromBytes(Buffer.from(CANARY)).reveal()).toBe(CANARY);
  });

  it('never renders its plaintext through JSON, inspect, string conversion or formatting', () => {
    const secret = SecretValue.from(CANARY);
    const holder = { credential: 'stripe', secret, nested: { list: [secret] } };
    const renderings = [
      JSON.stringify(secret),
      JSON.stringify(holder),
      inspect(secret),
      inspect(holder, { depth: 10, showHidden: true }),
      String(secret),
      `${secret}`,
      'prefix ' + secret,
      format('%s %o %O %j', secret, holder, holder, holder),
      secret.toString(),
      Object.keys(secret).join(','),
      JSON.stringify(Object.getOwnPropertyDescriptors(secret)),
    ];
    for (const rendering of renderings) expect(rendering).not.toContain(CANARY);
    expect(String(secret)).toBe(REDACTED);
    expect(JSON.stringify(holder)).toBe(
      `{"credential":"stripe","secret":"${REDACTED}","nested":{"list":["${REDACTED}"]}}`,
    );
    expect(inspect(secret)).toBe(REDACTED);
  });

  it('does not leak through an error message that interpolates it', () => {
    const secret = SecretValue.from(CANARY);
    const error = new Error(`could not use ${secret}`);
    expect(error.message).not.toContain(CANARY);
    expect(inspect(error)).not.toContain(CANARY);
  });

  it('compares secrets by value', () => {
    expect(SecretValue.from('a').equals(SecretValue.from('a'))).toBe(true);
    expect(SecretValue.from('a').equals(SecretValue.from('b'))).toBe(false);
    expect(SecretValue.from('a').equals(SecretValue.from('ab'))).toBe(false);
  });

  it('is immutable', () => {
    const secret = SecretValue.from(CANARY);
    expect(Object.isFrozen(secret)).toBe(true);
    expect(SecretValue.isSecretValue(secret)).toBe(true);
    expect(SecretValue.isSecretValue(CANARY)).toBe(false);
  });
});

import { timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';

/** What every accidental rendering of a secret prints. */
export const REDACTED = '[redacted]';

declare const secretValueBrand: unique symbol;

/**
 * Secret material (an API key, a bearer token, an OAuth client secret...). The value lives in a
 * native private field, so it is not an own property: `JSON.stringify`, `util.inspect`, template
 * literals, string concatenation and `String()` all see "[redacted]". The only way to the
 * plaintext is an explicit `reveal()`, which is easy to grep for in review.
 */
export class SecretValue {
  declare readonly [secretValueBrand]: true;
  readonly #value: string;

  private constructor(value: string) {
    this.#value = value;
    Object.freeze(this);
  }

  static from(value: string): SecretValue {
    if (typeof value !== 'string') throw new TypeError('SecretValue.from expects a string');
    return new SecretValue(value);
  }

  /** Decodes UTF-8 bytes (for example a decrypted plaintext). */
  static fromBytes(bytes: Uint8Array): SecretValue {
    return new SecretValue(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  }

  static isSecretValue(value: unknown): value is SecretValue {
    return value instanceof SecretValue;
  }

  /** The plaintext. Call it only at the point where the secret leaves the process (a header, a request body). */
  reveal(): string {
    return this.#value;
  }

  /** The plaintext as UTF-8 bytes; the caller should `fill(0)` the buffer when done. */
  revealBytes(): Buffer {
    return Buffer.from(this.#value, 'utf8');
  }

  /** Constant-time comparison (for equal lengths). */
  equals(other: SecretValue): boolean {
    const a = this.revealBytes();
    const b = other.revealBytes();
    try {
      return a.length === b.length && timingSafeEqual(a, b);
    } finally {
      a.fill(0);
      b.fill(0);
    }
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [Symbol.toPrimitive](): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

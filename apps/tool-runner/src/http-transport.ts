import type { CredentialInjection, JsonValue } from '#libs/contracts';
import { EgressDeniedError, guardedFetch, ResponseTooLargeError, type EgressPolicy } from './guarded-fetch.js';

export { egressAllowed, matchEgress } from './egress.js';

export interface ToolFailure {
  code: string;
  message: string;
  retryable: boolean;
  details?: JsonValue;
}
/** The outcome of one call; `resultRef` is set when the result was offloaded and `result` is its preview. */
export type CallOutcome = { ok: true; result: JsonValue; resultRef?: string } | { ok: false; error: ToolFailure };

const MAX_REDIRECTS = 3;

export function egressFailure(e: EgressDeniedError): CallOutcome {
  return { ok: false, error: { code: 'egress_denied', message: e.message, retryable: false, details: e.details } };
}

export function tooLargeFailure(e: ResponseTooLargeError): CallOutcome {
  return { ok: false, error: { code: 'result_too_large', message: `the tool's result is larger than the hard cap of ${e.limit} bytes`, retryable: false } };
}

/** Secrets shorter than this are not searched for in results (they would match everywhere). */
const MIN_REDACTED_LENGTH = 4;
export const REDACTED = '[redacted]';

/**
 * The outcome with every occurrence of the credential's secret (the header value, and the token of
 * a `Bearer <token>` value) replaced by "[redacted]": a tool that echoes its Authorization header
 * in a result or an error body must not carry the secret into the journal, the events or the logs.
 */
export function redactCredential(outcome: CallOutcome, credential: CredentialInjection | undefined): CallOutcome {
  if (!credential) return outcome;
  const secrets = [credential.value, credential.value.replace(/^bearer\s+/i, '')]
    .filter((s) => s.length >= MIN_REDACTED_LENGTH)
    .sort((a, b) => b.length - a.length);
  if (secrets.length === 0) return outcome;
  const scrub = (s: string): string => secrets.reduce((acc, secret) => acc.split(secret).join(REDACTED), s);
  const walk = (v: JsonValue): JsonValue => {
    if (typeof v === 'string') return scrub(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [scrub(k), walk(x)]));
    return v;
  };
  if (outcome.ok) return { ...outcome, result: walk(outcome.result) };
  const { details, ...error } = outcome.error;
  return { ok: false, error: { ...error, message: scrub(error.message), ...(details !== undefined ? { details: walk(details) } : {}) } };
}

/**
 * One attempt of an http tool call: `POST <url>` with `{"args": ...}` and the `Idempotency-Key`
 * header. Every hop (the first request and each redirect, followed with the same POST) must pass
 * the egress rules: the allowlist, and the addresses the host resolves to (guarded-fetch.ts).
 * 2xx JSON is the result, 4xx a non-retryable error, 5xx/timeouts/network errors retryable.
 * `credential` (a redeemed delegation's header) goes only to the tool's own origin: a redirect to
 * another origin is followed without it. The outcome never contains the credential's secret.
 */
export async function httpAttempt(
  url: string, args: JsonValue, idempotencyKey: string, policy: EgressPolicy, timeoutMs: number,
  extraHeaders: Record<string, string> = {}, credential?: CredentialInjection,
): Promise<CallOutcome> {
  return redactCredential(await attempt(url, args, idempotencyKey, policy, timeoutMs, extraHeaders, credential), credential);
}

async function attempt(
  url: string, args: JsonValue, idempotencyKey: string, policy: EgressPolicy, timeoutMs: number,
  extraHeaders: Record<string, string>, credential: CredentialInjection | undefined,
): Promise<CallOutcome> {
  let target = new URL(url);
  const origin = target.origin;
  const signal = AbortSignal.timeout(timeoutMs);
  const fetchGuarded = guardedFetch(policy);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    let res: Response;
    const auth = credential && target.origin === origin ? { [credential.header.toLowerCase()]: credential.value } : {};
    try {
      res = await fetchGuarded(target, {
        method: 'POST',
        redirect: 'manual',
        signal,
        headers: { ...extraHeaders, ...auth, 'content-type': 'application/json', accept: 'application/json', 'idempotency-key': idempotencyKey },
        body: JSON.stringify({ args }),
      });
    } catch (e) {
      if (e instanceof EgressDeniedError) return egressFailure(e);
      const timedOut = signal.aborted;
      return { ok: false, error: { code: timedOut ? 'timeout' : 'network_error', message: timedOut ? `no answer within ${timeoutMs} ms` : `request failed: ${(e as Error).message}`, retryable: true } };
    }
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel().catch(() => undefined);
      target = new URL(res.headers.get('location')!, target);
      continue;
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      if (e instanceof ResponseTooLargeError) return tooLargeFailure(e);
      const timedOut = signal.aborted;
      return { ok: false, error: { code: timedOut ? 'timeout' : 'network_error', message: timedOut ? `no answer within ${timeoutMs} ms` : `reading the response failed: ${(e as Error).message}`, retryable: true } };
    }
    if (res.status >= 200 && res.status < 300) {
      try {
        return { ok: true, result: text === '' ? null : (JSON.parse(text) as JsonValue) };
      } catch {
        return { ok: false, error: { code: 'invalid_response', message: 'the tool answered 2xx with a body that is not JSON', retryable: false } };
      }
    }
    const snippet = text.slice(0, 500);
    return {
      ok: false,
      error: { code: `http_${res.status}`, message: `the tool answered HTTP ${res.status}${snippet ? `: ${snippet}` : ''}`, retryable: res.status >= 500 },
    };
  }
  return { ok: false, error: { code: 'too_many_redirects', message: `more than ${MAX_REDIRECTS} redirects`, retryable: false } };
}

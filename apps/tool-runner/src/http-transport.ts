import type { JsonValue } from '#libs/contracts';

export interface ToolFailure {
  code: string;
  message: string;
  retryable: boolean;
  details?: JsonValue;
}
export type CallOutcome = { ok: true; result: JsonValue } | { ok: false; error: ToolFailure };

/** Whether a URL's host is on a tool's egress allowlist (`host`, `host:port` or `*.domain`). */
export function egressAllowed(url: URL, egress: readonly string[]): boolean {
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return egress.some((entry) => {
    const e = entry.toLowerCase();
    const [h, p] = e.startsWith('[') ? [e.slice(1, e.indexOf(']')), e.split(']:')[1]] : e.split(':');
    if (p !== undefined && p !== port) return false;
    if (h.startsWith('*.')) return host.endsWith(h.slice(1)) && host.length > h.length - 1;
    return host === h;
  });
}

const MAX_REDIRECTS = 3;

/**
 * One attempt of an http tool call: `POST <url>` with `{"args": ...}` and the `Idempotency-Key`
 * header. Redirects are followed only to hosts on the allowlist. 2xx JSON is the result, 4xx a
 * non-retryable error, 5xx/timeouts/network errors retryable.
 */
export async function httpAttempt(
  url: string, args: JsonValue, idempotencyKey: string, egress: readonly string[], timeoutMs: number,
  extraHeaders: Record<string, string> = {},
): Promise<CallOutcome> {
  let target = new URL(url);
  const signal = AbortSignal.timeout(timeoutMs);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    if (!egressAllowed(target, egress)) {
      return { ok: false, error: { code: 'egress_denied', message: `egress to ${target.host} is not allowed for this tool`, retryable: false } };
    }
    let res: Response;
    try {
      res = await fetch(target, {
        method: 'POST',
        redirect: 'manual',
        signal,
        headers: { 'content-type': 'application/json', accept: 'application/json', 'idempotency-key': idempotencyKey, ...extraHeaders },
        body: JSON.stringify({ args }),
      });
    } catch (e) {
      const timedOut = signal.aborted;
      return { ok: false, error: { code: timedOut ? 'timeout' : 'network_error', message: timedOut ? `no answer within ${timeoutMs} ms` : `request failed: ${(e as Error).message}`, retryable: true } };
    }
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel();
      target = new URL(res.headers.get('location')!, target);
      continue;
    }
    const text = await res.text().catch(() => '');
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

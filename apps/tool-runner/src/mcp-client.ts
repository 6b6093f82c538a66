import { Inject, Injectable, Optional } from '@nestjs/common';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { AgentmeshError, digestOf, invalid, unavailable, type CredentialInjection, type JsonObject, type JsonValue } from '#libs/contracts';
import { EgressDeniedError, guardedFetch, ResponseTooLargeError, type EgressPolicy, type FetchLike, type ResolveAll } from './guarded-fetch.js';
import { egressFailure, redactCredential, tooLargeFailure, type CallOutcome } from './http-transport.js';

/** Optional knobs of the tool-runner's providers (tests set them; the service uses the defaults). */
export const TOOL_RUNNER_OPTIONS = Symbol('TOOL_RUNNER_OPTIONS');
export interface ToolRunnerOptions {
  /** How long an MCP server's tool list is trusted before it is listed again (default 30 s). */
  mcpListTtlMs?: number;
  /** DNS resolution for the egress check (default node:dns lookup, all addresses). */
  resolve?: ResolveAll;
}

export const DEFAULT_MCP_LIST_TTL_MS = 30_000;
/** `_meta` key carrying the call's idempotency key to MCP servers that dedupe on it. */
export const MCP_IDEMPOTENCY_META = 'dev.agentmesh/idempotency-key';

/** sha256 of what a model is told about an MCP tool: its description and input schema. */
export function mcpDefinitionDigest(tool: { description?: string; inputSchema?: unknown }): string {
  return digestOf({ description: tool.description ?? '', inputSchema: tool.inputSchema ?? null });
}

export type McpInvocation =
  | { changed: true; served: string | null }
  | { changed: false; outcome: CallOutcome };

class McpFailure extends Error {
  override readonly name = 'McpFailure';
  readonly code = 'mcp_failure';
  constructor(readonly outcome: CallOutcome & { ok: false }) {
    super(outcome.error.message);
  }
}

type Phase = 'connect' | 'call';

/**
 * MCP over Streamable HTTP with the official SDK client. Each call opens a session (initialize),
 * lists the server's tools when the cached list is older than the TTL, checks that the tool's
 * definition is still the one registered, calls it and ends the session. All HTTP goes through
 * the guarded fetch, so the egress rules hold for MCP servers and their redirects too.
 */
@Injectable()
export class McpClientService {
  private readonly listings = new Map<string, { at: number; tools: Map<string, string> }>();
  private readonly ttlMs: number;

  constructor(@Optional() @Inject(TOOL_RUNNER_OPTIONS) opts?: ToolRunnerOptions) {
    this.ttlMs = opts?.mcpListTtlMs ?? DEFAULT_MCP_LIST_TTL_MS;
  }

  /**
   * For registration: lists the server's tools now and returns the digest of `tool`'s definition.
   * Throws invalid_argument when the server does not serve it or egress forbids the URL,
   * unavailable when the server cannot be reached.
   */
  async definitionDigest(url: string, tool: string, policy: EgressPolicy, timeoutMs: number): Promise<string> {
    let tools: Map<string, string>;
    try {
      tools = await this.session(url, policy, timeoutMs, undefined, async (client, signal) => this.listAll(url, client, signal, timeoutMs));
    } catch (e) {
      if (!(e instanceof McpFailure)) throw e;
      const err = e.outcome.error;
      if (err.code === 'egress_denied') throw invalid(`the MCP server is not reachable under the tool's egress rules: ${err.message}`, [{ field: '/egress', message: err.message }]);
      throw unavailable(`cannot list the tools of the MCP server at ${url}: ${err.message}`, e);
    }
    const digest = tools.get(tool);
    if (digest === undefined) {
      throw invalid(`the MCP server at ${url} does not serve a tool named "${tool}"`, [{ field: '/transport/tool', message: `not served by the MCP server (it serves: ${[...tools.keys()].slice(0, 20).join(', ') || 'none'})` }]);
    }
    return digest;
  }

  /**
   * Calls `tool` unless the server now serves a definition other than `expectedDigest` (then
   * `changed`, nothing is called). Failures come back as outcomes; `retryable` is set only for
   * failures before the tool was called. `credential` (a redeemed delegation's header) is sent on
   * every request of the session to the server's origin, never across a redirect to another one,
   * and its secret never appears in the outcome.
   */
  async invoke(req: {
    url: string; tool: string; args: JsonObject; expectedDigest: string; policy: EgressPolicy; timeoutMs: number; idempotencyKey: string;
    credential?: CredentialInjection;
  }): Promise<McpInvocation> {
    const r = await this.invokeOnce(req);
    return r.changed ? r : { changed: false, outcome: redactCredential(r.outcome, req.credential) };
  }

  private async invokeOnce(req: {
    url: string; tool: string; args: JsonObject; expectedDigest: string; policy: EgressPolicy; timeoutMs: number; idempotencyKey: string;
    credential?: CredentialInjection;
  }): Promise<McpInvocation> {
    const cached = this.fresh(req.url);
    if (cached) {
      const served = cached.get(req.tool) ?? null;
      if (served !== req.expectedDigest) return { changed: true, served };
    }
    try {
      return await this.session(req.url, req.policy, req.timeoutMs, req.idempotencyKey, async (client, signal, enterCall) => {
        if (!cached) {
          const served = (await this.listAll(req.url, client, signal, req.timeoutMs)).get(req.tool) ?? null;
          if (served !== req.expectedDigest) return { changed: true, served };
        }
        enterCall();
        const res = await client.callTool(
          { name: req.tool, arguments: req.args, _meta: { [MCP_IDEMPOTENCY_META]: req.idempotencyKey } },
          undefined,
          { signal, timeout: req.timeoutMs },
        );
        return { changed: false, outcome: mapCallResult(res) };
      }, req.credential);
    } catch (e) {
      if (e instanceof McpFailure) return { changed: false, outcome: e.outcome };
      throw e;
    }
  }

  /** Forgets the cached tool list of a server (registration lists afresh anyway). */
  forget(url: string): void {
    this.listings.delete(url);
  }

  private fresh(url: string): Map<string, string> | null {
    const hit = this.listings.get(url);
    return hit && Date.now() - hit.at < this.ttlMs ? hit.tools : null;
  }

  private async listAll(url: string, client: Client, signal: AbortSignal, timeoutMs: number): Promise<Map<string, string>> {
    const tools = new Map<string, string>();
    let cursor: string | undefined;
    for (let page = 0; page < 100; page++) {
      const r = await client.listTools(cursor ? { cursor } : undefined, { signal, timeout: timeoutMs });
      for (const t of r.tools) tools.set(t.name, mcpDefinitionDigest(t));
      cursor = r.nextCursor;
      if (!cursor) break;
    }
    this.listings.set(url, { at: Date.now(), tools });
    return tools;
  }

  private async session<T>(
    url: string, policy: EgressPolicy, timeoutMs: number, idempotencyKey: string | undefined,
    fn: (client: Client, signal: AbortSignal, enterCall: () => void) => Promise<T>,
    credential?: CredentialInjection,
  ): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const stop = new AbortController();
    const signal = AbortSignal.any([timeout, stop.signal]);
    let denied: EgressDeniedError | undefined;
    let tooLarge: ResponseTooLargeError | undefined;
    const base = guardedFetch({
      ...policy,
      sensitiveHeaders: credential ? [credential.header] : [],
      onTooLarge: (e) => { tooLarge = e; stop.abort(e); },
    });
    const fetchFn: FetchLike = async (u, init = {}) => {
      try {
        return await base(u, { ...init, signal: init.signal ? AbortSignal.any([init.signal, signal]) : signal });
      } catch (e) {
        if (e instanceof EgressDeniedError) { denied = e; stop.abort(e); }
        throw e;
      }
    };
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      fetch: fetchFn,
      requestInit: idempotencyKey || credential
        ? { headers: { ...(credential ? { [credential.header.toLowerCase()]: credential.value } : {}), ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) } }
        : undefined,
      reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
    });
    const client = new Client({ name: 'agentmesh-tool-runner', version: '1.0.0' });
    let phase: Phase = 'connect';
    try {
      await client.connect(transport, { signal, timeout: timeoutMs });
      return await fn(client, signal, () => { phase = 'call'; });
    } catch (e) {
      if (denied) throw new McpFailure(egressFailure(denied) as CallOutcome & { ok: false });
      if (tooLarge) throw new McpFailure(tooLargeFailure(tooLarge) as CallOutcome & { ok: false });
      throw new McpFailure(classifyError(e, phase, timeout.aborted, timeoutMs));
    } finally {
      if (!signal.aborted) await transport.terminateSession().catch(() => undefined);
      await client.close().catch(() => undefined);
    }
  }
}

function classifyError(e: unknown, phase: Phase, timedOut: boolean, timeoutMs: number): CallOutcome & { ok: false } {
  const retryable = phase === 'connect';
  const where = phase === 'connect' ? 'connecting to the MCP server' : 'calling the MCP tool';
  if (timedOut || (e instanceof McpError && e.code === ErrorCode.RequestTimeout)) {
    return { ok: false, error: { code: 'timeout', message: `no answer within ${timeoutMs} ms while ${where}`, retryable } };
  }
  if (e instanceof McpError) {
    return { ok: false, error: { code: 'mcp_error', message: `${where} failed: ${e.message}`, retryable: false, details: { mcpCode: e.code } } };
  }
  if (e instanceof StreamableHTTPError) {
    const status = e.code ?? 0;
    return { ok: false, error: { code: status ? `http_${status}` : 'mcp_error', message: `${where} failed: ${e.message}`.slice(0, 600), retryable: retryable && (status === 0 || status >= 500) } };
  }
  if (e instanceof AgentmeshError) throw e;
  return { ok: false, error: { code: 'network_error', message: `${where} failed: ${(e as Error)?.message ?? String(e)}`.slice(0, 600), retryable } };
}

type CallResult = Awaited<ReturnType<Client['callTool']>>;

/**
 * Maps an MCP tool result to a call outcome: `isError` is a non-retryable `mcp_tool_error`
 * (message from the text content); otherwise `structuredContent` when the tool gives one, else
 * `{content, text?}` (`text` joins the text items).
 */
export function mapCallResult(res: CallResult): CallOutcome {
  if ('toolResult' in res && !('content' in res)) return { ok: true, result: (res.toolResult ?? null) as JsonValue };
  const content = (Array.isArray(res.content) ? res.content : []) as Array<{ type: string; text?: string }>;
  const text = content.filter((c) => c.type === 'text' && typeof c.text === 'string').map((c) => c.text).join('\n');
  if (res.isError === true) {
    return {
      ok: false,
      error: { code: 'mcp_tool_error', message: `the MCP tool reported an error${text ? `: ${text.slice(0, 500)}` : ''}`, retryable: false, details: { content: content as unknown as JsonValue } },
    };
  }
  if (res.structuredContent !== undefined && res.structuredContent !== null) return { ok: true, result: res.structuredContent as JsonObject };
  return { ok: true, result: { content: content as unknown as JsonValue, ...(text ? { text } : {}) } };
}

import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  AgentmeshError, BUCKETS, CREDENTIAL_FAILURES, SchemaValidator, SPENT_DELEGATION_CODES, toolResultMsgId, type CommandMap, type CredentialInjection, type JsonObject, type JsonValue,
  type ToolRecord,
} from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CommandBus, CONFIG, LOGGER, NATS, openBucket, RetryLaterError, RpcClient } from '#libs/messaging';
import { KvDocuments } from '#libs/store';
import { metrics, type Logger } from '#libs/telemetry';
import { BUILTINS, BuiltinError } from './builtins.js';
import { httpAttempt, type CallOutcome } from './http-transport.js';
import { McpClientService } from './mcp-client.js';
import { ToolRegistry } from './registry.service.js';
import { MAX_RESULT_BYTES, OFFLOAD_THRESHOLD_BYTES, previewOf, ResultStore } from './result-store.js';
import { SessionMemory } from './session-memory.js';

/** What the tool-runner remembers of a finished call, keyed by its idempotency key. */
interface CallRecord {
  /** As published: an offloaded result is kept as its preview and `resultRef`. */
  outcome: CallOutcome;
  durationMs: number;
  at: string;
}

const MAX_ATTEMPTS = 3;
/** Redeeming may fetch an OAuth token (the broker gives that 4 s). */
const REDEEM_TIMEOUT_MS = 8000;
const CREDENTIAL_CODES = new Set<string>(CREDENTIAL_FAILURES);

type CredentialGrant = { ok: true; inject?: CredentialInjection } | { ok: false; outcome: CallOutcome };

/** The part of a JetStream message context the executor uses (a stub in tests). */
export interface WorkContext { working(): void }

/**
 * Executes tool calls. A call whose key already completed returns the recorded outcome without
 * calling the tool again; a side-effecting call (http, mcp, impure builtins such as memory_put) is
 * recorded before its result is published, and carries its key to the tool (`Idempotency-Key`,
 * MCP `_meta`) to close the crash window in between. Results over 64 KiB are offloaded to the
 * object store and travel as `resultRef` plus a preview; results over 16 MiB fail.
 */
@Injectable()
export class ToolExecutor implements OnModuleInit {
  private bus!: CommandBus;
  private credentials!: RpcClient;
  private records!: KvDocuments<CallRecord>;
  private readonly validator = new SchemaValidator();

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly registry: ToolRegistry,
    private readonly mcp: McpClientService,
    private readonly memory: SessionMemory,
    private readonly results: ResultStore,
  ) {}

  async onModuleInit(): Promise<void> {
    this.bus = new CommandBus(this.nc);
    this.credentials = new RpcClient(this.nc, REDEEM_TIMEOUT_MS);
    this.records = new KvDocuments(await openBucket(this.nc, BUCKETS.toolCalls));
  }

  async execute(cmd: CommandMap['tool.execute'], ctx: WorkContext): Promise<void> {
    const result = await this.handle(cmd, ctx);
    await this.bus.send('tool.result', result, toolResultMsgId(cmd.callKey, cmd.attempt));
  }

  /** Runs (or recalls) one call and returns the tool.result command to publish. */
  async handle(cmd: CommandMap['tool.execute'], ctx: WorkContext): Promise<CommandMap['tool.result']> {
    const started = performance.now();
    const tool = await this.registry.get(cmd.tenantId, cmd.tool.name, cmd.tool.version);
    let outcome: CallOutcome;
    let durationMs: number;
    const recorded = tool && !this.isPure(tool) ? await this.records.get(cmd.tenantId, cmd.callKey) : null;
    if (recorded) {
      outcome = recorded.outcome;
      durationMs = recorded.durationMs;
    } else {
      outcome = await this.offloadIfLarge(cmd, await this.run(cmd, tool, ctx));
      durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      // a spent delegation is not the call's outcome: the orchestrator sends the call again with a
      // fresh one, which must find no record (a tool-runner that died may have called the tool:
      // its Idempotency-Key, the call key, makes the second call the same one)
      const spent = !outcome.ok && SPENT_DELEGATION_CODES.has(outcome.error.code);
      if (tool && !this.isPure(tool) && !spent) {
        await this.records.put(cmd.tenantId, [cmd.callKey], { outcome, durationMs, at: new Date().toISOString() });
      }
    }
    metrics.toolCalls.inc({ tenant: cmd.tenantId, tool: cmd.tool.name, outcome: outcome.ok ? 'ok' : outcome.error.code });
    const base = { tenantId: cmd.tenantId, runId: cmd.runId, step: cmd.step, callKey: cmd.callKey, durationMs, ...(cmd.attempt ? { attempt: cmd.attempt } : {}) };
    return outcome.ok
      ? { ...base, ok: true, result: outcome.result, ...(outcome.resultRef ? { resultRef: outcome.resultRef } : {}) }
      : { ...base, ok: false, error: { code: outcome.error.code, message: outcome.error.message, ...(outcome.error.details !== undefined ? { details: outcome.error.details } : {}) } };
  }

  private isPure(tool: ToolRecord): boolean {
    return tool.transport.kind === 'builtin' && BUILTINS[tool.transport.name]?.pure === true;
  }

  private fail(code: string, message: string, details?: JsonValue): CallOutcome {
    return { ok: false, error: { code, message, retryable: false, ...(details !== undefined ? { details } : {}) } };
  }

  /** Results over 64 KiB go to the object store; the outcome keeps a preview and the ref. */
  private async offloadIfLarge(cmd: CommandMap['tool.execute'], outcome: CallOutcome): Promise<CallOutcome> {
    if (!outcome.ok || outcome.resultRef) return outcome;
    const json = JSON.stringify(outcome.result ?? null);
    const bytes = Buffer.byteLength(json);
    if (bytes <= OFFLOAD_THRESHOLD_BYTES) return outcome;
    if (bytes > MAX_RESULT_BYTES) return this.fail('result_too_large', `the result is ${bytes} bytes, more than the hard cap of ${MAX_RESULT_BYTES} bytes`);
    const ref = await this.results.offload(cmd.tenantId, cmd.callKey, json);
    return { ok: true, result: previewOf(ref, json), resultRef: ref };
  }

  private async run(cmd: CommandMap['tool.execute'], tool: ToolRecord | null, ctx: WorkContext): Promise<CallOutcome> {
    if (!tool) return this.fail('tool_not_found', `tool ${cmd.tool.name}@${cmd.tool.version} is not registered`);
    const reason = await this.registry.disabledReason(cmd.tenantId, tool.name);
    if (reason === 'rug_pull') {
      return this.fail('tool_definition_changed', `tool ${tool.name} is disabled: its MCP server changed the tool's definition; register a new version to enable it`);
    }
    if (reason) return this.fail('tool_disabled', `tool ${tool.name} is disabled`);
    const problems = this.validator.problems(`${cmd.tenantId}/${tool.name}@${tool.version}`, tool.inputSchema, cmd.args);
    if (problems.length) {
      return this.fail('invalid_arguments', `arguments do not match the tool's input schema: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems as unknown as JsonValue);
    }
    return this.invoke(cmd, tool, ctx);
  }

  /** Keeps the message ours while a call runs longer than a third of the ack wait. */
  private async beating<T>(ctx: WorkContext, fn: () => Promise<T>): Promise<T> {
    const beat = setInterval(() => ctx.working(), Math.max(1000, Math.floor(this.config.ackWaitMs / 3)));
    try {
      return await fn();
    } finally {
      clearInterval(beat);
    }
  }

  private async retrying(attempt: () => Promise<CallOutcome>): Promise<CallOutcome> {
    let last: CallOutcome = this.fail('not_called', 'not called');
    for (let n = 1; n <= MAX_ATTEMPTS; n++) {
      last = await attempt();
      if (last.ok || !last.error.retryable) return last;
      if (n < MAX_ATTEMPTS) await new Promise((r) => setTimeout(r, 100 * 2 ** (n - 1)));
    }
    return last;
  }

  private async invoke(cmd: CommandMap['tool.execute'], tool: ToolRecord, ctx: WorkContext): Promise<CallOutcome> {
    const t = tool.transport;
    switch (t.kind) {
      case 'builtin': {
        const b = BUILTINS[t.name];
        if (!b) return this.fail('tool_not_found', `builtin "${t.name}" does not exist`);
        try {
          const args = (cmd.args ?? {}) as JsonObject;
          return { ok: true, result: await b.run(args, { tenantId: cmd.tenantId, sessionId: cmd.sessionId, memory: this.memory }) };
        } catch (e) {
          if (e instanceof BuiltinError) return this.fail(e.code, e.message);
          throw e;
        }
      }
      case 'http': {
        const policy = this.registry.egressPolicy(tool.egress);
        return this.beating(ctx, async () => {
          const grant = await this.credential(cmd, tool);
          if (!grant.ok) return grant.outcome;
          return this.retrying(() => httpAttempt(t.url, cmd.args, cmd.callKey, policy, tool.timeoutMs, {}, grant.inject));
        });
      }
      case 'mcp':
        return this.beating(ctx, async () => {
          const grant = await this.credential(cmd, tool);
          if (!grant.ok) return grant.outcome;
          return this.callMcp(cmd, tool, t, grant.inject);
        });
    }
  }

  /**
   * The credential of a tool that has one: its delegation (minted for this call by the
   * credential-broker, carried by the command) is redeemed now, once for all attempts, and the
   * header comes back to be put on the tool's request only. Every refusal fails the call closed
   * with the broker's reason as the code (`credential_revoked`, `delegation_replayed`...); a broker
   * that does not answer makes the call wait (the command comes back) until the delegation expires.
   */
  private async credential(cmd: CommandMap['tool.execute'], tool: ToolRecord): Promise<CredentialGrant> {
    const ref = tool.credential;
    if (!ref) return { ok: true };
    const refused = (code: string, message: string): CredentialGrant => ({
      ok: false, outcome: this.fail(CREDENTIAL_CODES.has(code) ? code : 'credential_unavailable', message),
    });
    if (cmd.credentialError) return refused(cmd.credentialError.code, cmd.credentialError.message);
    if (!cmd.delegation) {
      return refused('credential_missing', `tool ${tool.name}@${tool.version} needs credential ${ref.name}, and the call carries no delegation for it`);
    }
    try {
      const r = await this.credentials.call('credentials.redeem', {
        tenantId: cmd.tenantId, tool: { name: tool.name, version: tool.version }, credentialName: ref.name, delegation: cmd.delegation,
      });
      return { ok: true, inject: r.inject };
    } catch (e) {
      if (!(e instanceof AgentmeshError)) throw e;
      const reason = e.extra.reason;
      if (reason && CREDENTIAL_CODES.has(reason)) return refused(reason, e.message);
      if (e.code === 'unavailable') throw new RetryLaterError('the credential broker is unavailable; the call waits for it', 1000, { cause: e });
      return refused('credential_unavailable', `credential ${ref.name} could not be used: ${e.message}`);
    }
  }

  private async callMcp(cmd: CommandMap['tool.execute'], tool: ToolRecord, t: { url: string; tool: string }, credential?: CredentialInjection): Promise<CallOutcome> {
    if (!tool.mcpDigest) {
      return this.fail('tool_definition_unknown', `tool ${tool.name}@${tool.version} was registered without its MCP definition digest; register a new version`);
    }
    const args = cmd.args;
    if (args === null || typeof args !== 'object' || Array.isArray(args)) return this.fail('invalid_arguments', 'MCP tool arguments must be a JSON object');
    const policy = this.registry.egressPolicy(tool.egress);
    const expectedDigest = tool.mcpDigest;
    const seen: { changed: boolean; served: string | null } = { changed: false, served: null };
    const outcome = await this.retrying(async () => {
      const r = await this.mcp.invoke({ url: t.url, tool: t.tool, args, expectedDigest, policy, timeoutMs: tool.timeoutMs, idempotencyKey: cmd.callKey, credential });
      if (r.changed) {
        Object.assign(seen, { changed: true, served: r.served });
        return this.fail('tool_definition_changed', `the MCP server at ${t.url} now serves ${r.served === null ? 'no tool' : 'another definition of the tool'} "${t.tool}"; tool ${tool.name} is disabled until a new version is registered`);
      }
      return r.outcome;
    });
    if (seen.changed) await this.onDefinitionChanged(cmd.tenantId, tool, seen.served);
    return outcome;
  }

  /**
   * A rug pull: the server serves another definition than the one registered. The tool name is
   * disabled (reason `rug_pull`, seen by every instance through the registry's flag) unless a newer
   * version already registered what the server serves now (then only this old version fails).
   */
  private async onDefinitionChanged(tenantId: string, tool: ToolRecord, served: string | null): Promise<void> {
    const latest = await this.registry.latestRecord(tenantId, tool.name);
    const superseded = latest !== null && latest.version !== tool.version && latest.mcpDigest !== undefined && latest.mcpDigest === served;
    this.logger.warn({ tenant: tenantId, tool: tool.name, version: tool.version, superseded }, 'MCP tool definition changed since registration');
    if (superseded || (await this.registry.disabledReason(tenantId, tool.name)) === 'rug_pull') return;
    await this.registry.setDisabled(tenantId, tool.name, true, 'rug_pull', tool.version);
  }
}

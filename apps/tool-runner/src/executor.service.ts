import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  BUCKETS, SchemaValidator, type CommandMap, type JsonObject, type JsonValue, type ToolRecord,
} from '#libs/contracts';
import type { AppConfig } from '#libs/config';
import { CommandBus, CONFIG, LOGGER, NATS, openBucket, type JsContext } from '#libs/messaging';
import { KvDocuments } from '#libs/store';
import { metrics, type Logger } from '#libs/telemetry';
import { BUILTINS, BuiltinError } from './builtins.js';
import { httpAttempt, type CallOutcome } from './http-transport.js';
import { ToolRegistry } from './registry.service.js';

/** What the tool-runner remembers of a finished call, keyed by its idempotency key. */
interface CallRecord {
  outcome: CallOutcome;
  durationMs: number;
  at: string;
}

const MAX_RESULT_BYTES = 256 * 1024;
const MAX_ATTEMPTS = 3;

/**
 * Executes tool calls. A call whose key already completed returns the recorded outcome without
 * calling the tool again; a side-effecting call is recorded before its result is published, and
 * carries its key to the tool (`Idempotency-Key`) to close the crash window in between.
 */
@Injectable()
export class ToolExecutor implements OnModuleInit {
  private bus!: CommandBus;
  private records!: KvDocuments<CallRecord>;
  private readonly validator = new SchemaValidator();

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly registry: ToolRegistry,
  ) {}

  async onModuleInit(): Promise<void> {
    this.bus = new CommandBus(this.nc);
    this.records = new KvDocuments(await openBucket(this.nc, BUCKETS.toolCalls));
  }

  async execute(cmd: CommandMap['tool.execute'], ctx: JsContext): Promise<void> {
    const started = performance.now();
    const tool = await this.registry.get(cmd.tenantId, cmd.tool.name, cmd.tool.version);
    let outcome: CallOutcome;
    let durationMs: number;
    const recorded = tool && !this.isPure(tool) ? await this.records.get(cmd.tenantId, cmd.callKey) : null;
    if (recorded) {
      outcome = recorded.outcome;
      durationMs = recorded.durationMs;
    } else {
      outcome = await this.run(cmd, tool, ctx);
      durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      if (tool && !this.isPure(tool)) {
        await this.records.put(cmd.tenantId, [cmd.callKey], { outcome, durationMs, at: new Date().toISOString() });
      }
    }
    metrics.toolCalls.inc({ tenant: cmd.tenantId, tool: cmd.tool.name, outcome: outcome.ok ? 'ok' : outcome.error.code });
    const base = { tenantId: cmd.tenantId, runId: cmd.runId, step: cmd.step, callKey: cmd.callKey, durationMs };
    await this.bus.send(
      'tool.result',
      outcome.ok
        ? { ...base, ok: true, result: outcome.result }
        : { ...base, ok: false, error: { code: outcome.error.code, message: outcome.error.message, ...(outcome.error.details !== undefined ? { details: outcome.error.details } : {}) } },
      `res:${cmd.callKey}`,
    );
  }

  private isPure(tool: ToolRecord): boolean {
    return tool.transport.kind === 'builtin' && BUILTINS[tool.transport.name]?.pure === true;
  }

  private fail(code: string, message: string, details?: JsonValue): CallOutcome {
    return { ok: false, error: { code, message, retryable: false, ...(details !== undefined ? { details } : {}) } };
  }

  private async run(cmd: CommandMap['tool.execute'], tool: ToolRecord | null, ctx: JsContext): Promise<CallOutcome> {
    if (!tool) return this.fail('tool_not_found', `tool ${cmd.tool.name}@${cmd.tool.version} is not registered`);
    if (this.registry.isDisabled(cmd.tenantId, tool.name)) return this.fail('tool_disabled', `tool ${tool.name} is disabled`);
    const problems = this.validator.problems(`${cmd.tenantId}/${tool.name}@${tool.version}`, tool.inputSchema, cmd.args);
    if (problems.length) {
      return this.fail('invalid_arguments', `arguments do not match the tool's input schema: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems as unknown as JsonValue);
    }
    const outcome = await this.invoke(cmd, tool, ctx);
    if (outcome.ok && JSON.stringify(outcome.result).length > MAX_RESULT_BYTES) {
      return this.fail('result_too_large', `the result is larger than ${MAX_RESULT_BYTES} bytes`);
    }
    return outcome;
  }

  private async invoke(cmd: CommandMap['tool.execute'], tool: ToolRecord, ctx: JsContext): Promise<CallOutcome> {
    const t = tool.transport;
    switch (t.kind) {
      case 'builtin': {
        const b = BUILTINS[t.name];
        if (!b) return this.fail('tool_not_found', `builtin "${t.name}" does not exist`);
        try {
          return { ok: true, result: b.run((cmd.args ?? {}) as JsonObject) };
        } catch (e) {
          if (e instanceof BuiltinError) return this.fail('builtin_error', e.message);
          throw e;
        }
      }
      case 'http': {
        // keep the message ours while the call runs longer than a third of the ack wait
        const beat = setInterval(() => ctx.working(), Math.max(1000, Math.floor(this.config.ackWaitMs / 3)));
        try {
          let last: CallOutcome = this.fail('not_called', 'not called');
          for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
            last = await httpAttempt(t.url, cmd.args, cmd.callKey, tool.egress, tool.timeoutMs);
            if (last.ok || !last.error.retryable) return last;
            if (attempt < MAX_ATTEMPTS) await new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1)));
          }
          return last;
        } finally {
          clearInterval(beat);
        }
      }
      case 'mcp':
        return this.fail('transport_unavailable', 'the mcp transport is not available in this version');
    }
  }
}

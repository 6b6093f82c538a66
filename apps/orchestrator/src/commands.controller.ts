import { Ctx, Payload } from '@nestjs/microservices';
import type { CommandMap } from '#libs/contracts';
import { JsContext, MessageController, OnCommand } from '#libs/messaging';
import { RunEngine } from './run-engine.service.js';

/**
 * The orchestrator's inbox: run commands and approval decisions from the gateway, tool results
 * from the tool-runner, and its own approval timers (AGENTMESH_TIMERS).
 */
@MessageController()
export class CommandsController {
  constructor(private readonly engine: RunEngine) {}

  @OnCommand('run.start')
  start(@Payload() cmd: CommandMap['run.start'], @Ctx() ctx: JsContext) {
    return this.engine.start(cmd, ctx);
  }

  @OnCommand('run.cancel')
  cancel(@Payload() cmd: CommandMap['run.cancel'], @Ctx() ctx: JsContext) {
    return this.engine.cancel(cmd, ctx);
  }

  @OnCommand('tool.result')
  toolResult(@Payload() res: CommandMap['tool.result'], @Ctx() ctx: JsContext) {
    return this.engine.toolResult(res, ctx);
  }

  @OnCommand('approval.decide')
  decideApproval(@Payload() cmd: CommandMap['approval.decide'], @Ctx() ctx: JsContext) {
    return this.engine.decideApproval(cmd, ctx);
  }

  @OnCommand('approval.timeout')
  approvalTimeout(@Payload() cmd: CommandMap['approval.timeout'], @Ctx() ctx: JsContext) {
    return this.engine.approvalTimeout(cmd, ctx);
  }
}

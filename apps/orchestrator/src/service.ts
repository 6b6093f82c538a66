import { CONSUMERS } from '#libs/contracts';
import { ActiveRuns } from '#libs/limits';
import type { ServiceDefinition } from '#libs/messaging';
import { StoreModule } from '#libs/store';
import { ApprovalProjection } from './approvals.js';
import { CommandsController } from './commands.controller.js';
import { PlannerSessions } from './planner-sessions.js';
import { RunIndexWriter } from './run-index.js';
import { RunEngine } from './run-engine.service.js';
import { ToolPolicy } from './tool-policy.js';

export const orchestrator: ServiceDefinition = {
  service: 'orchestrator',
  module: {
    // the run index read model (RunIndexWriter): MongoDB when MONGODB_URI is set, KV otherwise
    imports: [StoreModule.forRoot()],
    controllers: [CommandsController],
    providers: [RunEngine, RunIndexWriter, ApprovalProjection, PlannerSessions, ActiveRuns, ToolPolicy],
  },
  // commands, and the durable approval timers (nak'd until due: see RunEngine.approvalTimeout)
  consumers: [CONSUMERS.orchestrator, CONSUMERS.approvalTimers],
};

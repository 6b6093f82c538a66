import type { CommandSpec } from '../command.js';
import { agentCommands } from './agents.js';
import { approvalCommands } from './approvals.js';
import { budgetCommands } from './budget.js';
import { credentialCommands } from './credentials.js';
import { journalCommands } from './journal.js';
import { keyCommands } from './keys.js';
import { replayCommands } from './replay.js';
import { runCommands } from './runs.js';
import { tenantCommands } from './tenants.js';
import { toolCommands } from './tools.js';

/** Every command, in the order `agentmesh --help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  ...tenantCommands, ...keyCommands, ...toolCommands, ...agentCommands, ...credentialCommands,
  ...budgetCommands, ...runCommands, ...approvalCommands, ...journalCommands, ...replayCommands,
];

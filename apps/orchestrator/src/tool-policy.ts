import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import type { PinnedTool } from '#libs/contracts';
import { LOGGER, NATS, RetryLaterError } from '#libs/messaging';
import { NatsPolicyWatcher, PolicyService, ruleKey, type Decision } from '#libs/policy';
import { STORE, type Repositories } from '#libs/store';
import type { Logger } from '#libs/telemetry';

/** The subject the orchestrator asks `tools.run` as: `agent:<name>` (rules may name it, or `*`). */
export const agentSubject = (agent: string): string => `agent:${agent}`;

/** What deciding a run's tools needs of the PolicyService. */
export type ToolRunDecider = Pick<PolicyService, 'can' | 'storedTenantPolicy' | 'tenantRules' | 'reload'>;

/**
 * The tenant's say on which tools a run calls unattended (`tools.run`), asked once per pinned
 * `read`/`write` tool when the run resolves its tools, as subject `agent:<name>` with attributes
 * `{riskTier, tool}`. A refusal is recorded as `requireApproval: true` on the pinned tool in
 * `run.started`, so that replay and recovery decide from the journal and never ask the policy
 * again (`irreversible` tools always wait: not asked).
 *
 * The tenant's stored rules are read first and the policy reloaded if they differ from the loaded
 * ones, so a run started right after a policy change sees it (the change announcement may still be
 * on its way). A store that cannot be read makes the run wait (RetryLaterError): never unchecked.
 */
export async function decideToolRuns(
  policy: ToolRunDecider,
  tenant: string,
  agent: string,
  tools: Readonly<Record<string, PinnedTool>>,
): Promise<{ tools: Record<string, PinnedTool>; refused: Decision[] }> {
  try {
    const stored = (await policy.storedTenantPolicy(tenant)).rules.map(ruleKey);
    const loaded = policy.tenantRules(tenant).map(ruleKey);
    if (loaded.length !== stored.length || loaded.some((k, i) => k !== stored[i])) await policy.reload();
  } catch (err) {
    throw new RetryLaterError('the tenant policy cannot be read; the run waits', 1000, { cause: err });
  }
  const out: Record<string, PinnedTool> = {};
  const refused: Decision[] = [];
  for (const [name, t] of Object.entries(tools)) {
    if (t.riskTier === 'irreversible') {
      out[name] = t;
      continue;
    }
    const d = await policy.can({ principal: { tenant, roles: [], subject: agentSubject(agent) }, tenant, operation: 'tools.run', attrs: { riskTier: t.riskTier, tool: t.name } });
    if (d.allowed) out[name] = t;
    else {
      out[name] = { ...t, requireApproval: true };
      refused.push(d);
    }
  }
  return { tools: out, refused };
}

/**
 * The orchestrator's PolicyService, built as the gateway's (tenant rules in KV `am_policy`, reloads
 * on `svc.v1.policy.changed`), opened on first use (a failed open makes the run wait and is tried
 * again); `apply` decides a run's pinned tools with `decideToolRuns`.
 */
@Injectable()
export class ToolPolicy implements OnModuleDestroy {
  private svc?: Promise<PolicyService>;
  private watcher?: NatsPolicyWatcher;

  constructor(
    @Inject(NATS) private readonly nc: NatsConnection,
    @Inject(STORE) private readonly store: Repositories,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onModuleDestroy(): void {
    void this.svc?.then((s) => s.close(), () => undefined);
    this.watcher?.close();
  }

  /** The pinned tools with the tenant's `tools.run` verdict recorded on each. */
  async apply(tenant: string, agent: string, tools: Readonly<Record<string, PinnedTool>>): Promise<Record<string, PinnedTool>> {
    let svc: PolicyService;
    try {
      svc = await this.service();
    } catch (err) {
      throw new RetryLaterError('the tenant policy cannot be loaded; the run waits', 1000, { cause: err });
    }
    const { tools: out, refused } = await decideToolRuns(svc, tenant, agent, tools);
    for (const d of refused) this.logger.info({ tenant, agent, reason: d.reason, explanation: d.explanation }, 'tenant policy: the tool waits for an approval in this run');
    return out;
  }

  private service(): Promise<PolicyService> {
    if (!this.svc) {
      const p = (async () => {
        this.watcher ??= await NatsPolicyWatcher.create(this.nc);
        return PolicyService.create({ adapter: this.store.policies, watcher: this.watcher, onError: (err) => this.logger.error({ err }, 'policy reload failed') });
      })();
      // a failed open is tried again by the next run
      p.catch(() => {
        if (this.svc === p) this.svc = undefined;
      });
      this.svc = p;
    }
    return this.svc;
  }
}

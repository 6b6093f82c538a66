import type { AnyJournalEvent, PlannerDecision } from '#libs/contracts';
import { compactJson, formatDuration, formatUsd, type Output } from './output.js';

/** The call key of an external planner's decision (`<runId>:d<n>`), as opposed to an LLM call's. */
const PLANNER_DECISION_KEY = /:d\d+$/;

const ms = (from: string | undefined, to: string): number => (from ? Date.parse(to) - Date.parse(from) : NaN);

/**
 * Human progress of a run being followed: one line per finished step (`step n/N  tool  12 ms  ok`),
 * approvals, and the outcome. On a terminal the step in flight is shown live and replaced when
 * it ends; elsewhere only finished lines are printed, so logs stay clean.
 */
export class RunProgress {
  private total: number | null = null;
  private createdAt: string | undefined;
  private stepStartedAt = new Map<number, string>();
  private stepTool = new Map<number, string>();
  private live = false;
  private ended = false;
  /** Streamed LLM text of the step in flight (shown live on a terminal). */
  private streamed = '';

  constructor(private readonly out: Output) {}

  /** True once the terminal event was printed. */
  get finished(): boolean {
    return this.ended;
  }

  private label(step: number): string {
    return (this.total !== null ? `step ${step}/${this.total}` : `step ${step}`).padEnd(10);
  }

  private clearLive(): void {
    if (this.live) { this.out.stdout.write('\x1b[2K\r'); this.live = false; }
  }

  private line(text: string): void {
    this.clearLive();
    this.out.stdout.write(`${text}\n`);
  }

  private showLive(text: string): void {
    if (!this.out.tty) return;
    this.clearLive();
    this.out.stdout.write(text);
    this.live = true;
  }

  private stepLine(step: number, what: string, durationMs: number, outcome: string): void {
    const tool = (this.stepTool.get(step) ?? '').padEnd(18);
    this.line(`  ${this.label(step)}  ${tool}  ${formatDuration(durationMs).padStart(8)}  ${outcome}${what ? `  ${what}` : ''}`);
  }

  onEvent(e: AnyJournalEvent): void {
    switch (e.type) {
      case 'run.created': {
        const a = e.data.agent;
        this.createdAt = e.at;
        this.total = a.planner === 'graph' && a.steps ? a.steps.length : null;
        this.line(`run ${e.runId}  agent ${a.name}@${a.version}  planner ${a.planner}`);
        break;
      }
      case 'step.started':
        this.stepStartedAt.set(e.step, e.at);
        this.stepTool.set(e.step, e.data.kind === 'tool' ? e.data.tool : `llm ${e.data.model}`);
        this.showLive(`  ${this.label(e.step)}  ${(this.stepTool.get(e.step) ?? '').padEnd(18)}  running…`);
        break;
      case 'tool.called':
        this.stepTool.set(e.step, `${e.data.tool}@${e.data.version}`);
        break;
      case 'llm.delta':
        if (PLANNER_DECISION_KEY.test(e.data.callKey)) {
          // an external planner's partial output: a line of its own
          this.line(`  ${'partial'.padEnd(10)}  ${e.data.text}`);
        } else {
          this.streamed += e.data.text;
          const tail = this.streamed.replace(/\s+/g, ' ').slice(-60);
          this.showLive(`  ${this.label(e.step)}  ${(this.stepTool.get(e.step) ?? '').padEnd(18)}  ${tail}`);
        }
        break;
      case 'tool.completed':
        this.stepLine(e.step, '', e.data.durationMs, this.out.paint('ok', 'green'));
        break;
      case 'tool.failed':
        this.stepLine(e.step, `${e.data.error.code}: ${e.data.error.message}`, e.data.durationMs, this.out.paint('failed', 'red'));
        break;
      case 'llm.completed':
        this.streamed = '';
        this.stepLine(e.step, `${e.data.usage.inputTokens}/${e.data.usage.outputTokens} tokens  ${formatUsd(e.data.costUsd)}`, ms(this.stepStartedAt.get(e.step), e.at), this.out.paint('ok', 'green'));
        break;
      case 'approval.requested':
        this.line(`  ${this.label(e.step)}  ${`${e.data.tool}@${e.data.version}`.padEnd(18)}  ${this.out.status('waiting_approval')}  approval ${e.data.approvalId} (${e.data.riskTier}, expires ${e.data.expiresAt})`);
        break;
      case 'approval.granted':
        this.line(`  ${this.label(e.step)}  approved by ${e.data.by}${e.data.reason ? `: ${e.data.reason}` : ''}`);
        break;
      case 'approval.denied':
        this.line(`  ${this.label(e.step)}  ${this.out.paint('denied', 'red')} by ${e.data.by}${e.data.reason ? `: ${e.data.reason}` : ''}`);
        break;
      case 'approval.expired':
        this.line(`  ${this.label(e.step)}  ${this.out.paint('approval expired', 'yellow')}`);
        break;
      case 'run.cancel_requested':
        this.line(`  cancel requested${e.data.reason ? `: ${e.data.reason}` : ''}; the step in flight finishes first`);
        break;
      case 'run.completed':
        this.ended = true;
        this.line(`${this.out.status('completed')} in ${formatDuration(ms(this.createdAt, e.at))}  ${e.step} step${e.step === 1 ? '' : 's'}  cost ${formatUsd(e.data.cost.usd)}`);
        this.line(`output: ${compactJson(e.data.output)}`);
        break;
      case 'run.failed':
        this.ended = true;
        this.line(`${this.out.status('failed')} in ${formatDuration(ms(this.createdAt, e.at))}  ${e.data.error.code}: ${e.data.error.message}`);
        break;
      case 'run.cancelled':
        this.ended = true;
        this.line(`${this.out.status('cancelled')} in ${formatDuration(ms(this.createdAt, e.at))}  after ${e.step} step${e.step === 1 ? '' : 's'}${e.data.reason ? `: ${e.data.reason}` : ''}`);
        break;
      default:
        break;
    }
  }

  /** Clears a live line left on screen (the stream ended without a terminal event). */
  close(): void {
    this.clearLive();
  }
}

/** A one-line description of a journal event, for `agentmesh journal`. */
export function describeEvent(e: AnyJournalEvent): string {
  switch (e.type) {
    case 'run.created': return `agent ${e.data.agent.name}@${e.data.agent.version} input ${compactJson(e.data.input, 80)}${e.data.sessionId ? ` session ${e.data.sessionId}` : ''}`;
    case 'run.started': return `tools ${Object.values(e.data.tools).map((t) => `${t.name}@${t.version}`).join(', ') || '-'}`;
    case 'step.started': return e.data.kind === 'tool' ? `${e.data.stepId ? `${e.data.stepId}: ` : ''}${e.data.tool} ${compactJson(e.data.args, 80)}` : `llm ${e.data.model}`;
    case 'tool.called': return `${e.data.tool}@${e.data.version} (${e.data.riskTier}) ${e.data.callKey}`;
    case 'tool.completed': return `${formatDuration(e.data.durationMs)} → ${compactJson(e.data.result, 80)}`;
    case 'tool.failed': return `${formatDuration(e.data.durationMs)} ${e.data.error.code}: ${e.data.error.message}`;
    case 'llm.called': return `${e.data.model}${e.data.replica ? ` on ${e.data.replica}` : ''}`;
    case 'llm.delta': return compactJson(e.data.text, 80);
    case 'llm.completed': return `${e.data.usage.inputTokens}/${e.data.usage.outputTokens} tokens ${formatUsd(e.data.costUsd)}`;
    case 'approval.requested': return `${e.data.approvalId} ${e.data.tool}@${e.data.version} (${e.data.riskTier}) expires ${e.data.expiresAt}`;
    case 'approval.granted': case 'approval.denied': return `${e.data.approvalId} by ${e.data.by}${e.data.reason ? `: ${e.data.reason}` : ''}`;
    case 'approval.expired': return e.data.approvalId;
    case 'planner.decided': return `${e.data.planner} ${decisionText(e.data.decision)}`;
    case 'budget.reserved': case 'budget.settled': return `${formatUsd(e.data.usd)} ${e.data.callKey}`;
    case 'run.cancel_requested': return e.data.reason ?? '';
    case 'run.completed': return `output ${compactJson(e.data.output, 80)}`;
    case 'run.failed': return `${e.data.error.code}: ${e.data.error.message}`;
    case 'run.cancelled': return e.data.reason ?? '';
    default: return compactJson((e as { data?: unknown }).data, 80);
  }
}

function decisionText(d: PlannerDecision): string {
  switch (d.kind) {
    case 'call_tool': return `call_tool ${d.tool}${d.id ? ` (${d.id})` : ''}${d.requireApproval ? ' with approval' : ''} ${compactJson(d.args, 60)}`;
    case 'call_llm': return `call_llm ${d.model ?? d.hint ?? 'auto'} (${d.messages.length} message${d.messages.length === 1 ? '' : 's'})`;
    case 'emit': return `emit ${compactJson(d.output, 60)}`;
    case 'finish': return `finish ${compactJson(d.output, 60)}`;
    case 'fail': return `fail${d.code ? ` ${d.code}` : ''}: ${d.message}`;
  }
}

/** `  12  12:00:03.120  1  tool.completed  12 ms → {...}` */
export function journalLine(e: AnyJournalEvent, out: Output): string {
  const time = /T(\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)/.exec(e.at)?.[1] ?? e.at;
  const type = e.type === 'run.completed' ? out.paint(e.type.padEnd(20), 'green')
    : e.type === 'run.failed' || e.type === 'tool.failed' ? out.paint(e.type.padEnd(20), 'red')
      : e.type === 'run.cancelled' ? out.paint(e.type.padEnd(20), 'yellow') : e.type.padEnd(20);
  return `${String(e.seq).padStart(5)}  ${time.padEnd(12)}  ${String(e.step).padStart(3)}  ${type}  ${describeEvent(e)}`.trimEnd();
}

import { Body, Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { cancelRunBodySchema, invalid, SchemaValidator, startRunBodySchema } from '#libs/contracts';
import { LOGGER } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { Operation } from '../http/auth.js';
import { RunsService, type StartRunBody } from './runs.service.js';

const v = new SchemaValidator();
const STATUSES = ['queued', 'running', 'waiting_approval', 'completed', 'failed', 'cancelled'];

function seqParam(raw: unknown, name: string): number {
  if (raw === undefined || raw === '') return 0;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(`${name} must be a non-negative integer journal sequence`, [{ field: name, message: 'must be a non-negative integer' }]);
  return n;
}

@Controller('v1/tenants/:t/runs')
export class RunsController {
  constructor(private readonly runs: RunsService, @Inject(LOGGER) private readonly logger: Logger) {}

  /** Starts a run. With `Idempotency-Key`, the same key and body return the same run (200). */
  @Post()
  @Operation('runs.start')
  async start(@Param('t') t: string, @Body() body: unknown, @Headers('idempotency-key') key: string | undefined, @Res({ passthrough: true }) res: Response) {
    const b = v.assert<StartRunBody>('start-run', startRunBodySchema, body);
    const { run, created } = await this.runs.start(t, b, key);
    res.status(created ? 201 : 200).setHeader('Location', `/v1/tenants/${t}/runs/${run.id}`);
    return run;
  }

  @Get()
  @Operation('runs.list')
  list(@Param('t') t: string, @Query() q: Record<string, unknown>) {
    const limit = q.limit === undefined ? 20 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalid('limit must be an integer from 1 to 100', [{ field: 'limit', message: 'out of range' }]);
    if (q.status !== undefined && !STATUSES.includes(String(q.status))) throw invalid(`status must be one of ${STATUSES.join(', ')}`, [{ field: 'status', message: 'unknown status' }]);
    if (q.cursor !== undefined && typeof q.cursor !== 'string') throw invalid('cursor must be a string', [{ field: 'cursor', message: 'must be a string' }]);
    return this.runs.list(t, { limit, status: q.status as string | undefined, agent: q.agent as string | undefined, cursor: q.cursor as string | undefined });
  }

  @Get(':id')
  @Operation('runs.get')
  get(@Param('t') t: string, @Param('id') id: string) {
    return this.runs.get(t, id);
  }

  @Post(':id/cancel')
  @Operation('runs.cancel')
  @HttpCode(202)
  async cancel(@Param('t') t: string, @Param('id') id: string, @Body() body: unknown) {
    const b = v.assert<{ reason?: string }>('cancel-run', cancelRunBodySchema, body ?? {});
    return this.runs.cancel(t, id, b.reason);
  }

  /**
   * The run's journal as Server-Sent Events: `id` is the journal sequence, `event` the type,
   * `data` the event. `Last-Event-ID` or `?after=` resumes; the stream ends after the terminal event.
   */
  @Get(':id/events')
  @Operation('runs.events')
  async events(@Param('t') t: string, @Param('id') id: string, @Req() req: Request, @Res() res: Response) {
    const after = req.headers['last-event-id'] !== undefined ? seqParam(req.headers['last-event-id'], 'Last-Event-ID') : seqParam(req.query.after, 'after');
    const abort = new AbortController();
    const events = await this.runs.events(t, id, after, abort.signal);
    res.status(200).set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache, no-transform', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
    res.write(': agentmesh run events\n\n');
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    res.on('close', () => abort.abort());
    try {
      for await (const e of events) {
        if (abort.signal.aborted) break;
        res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
      }
    } catch (err) {
      if (!abort.signal.aborted) {
        this.logger.warn({ err, runId: id }, 'event stream failed');
        res.write(`event: error\ndata: ${JSON.stringify({ code: 'unavailable', detail: 'the event stream was interrupted; resume with Last-Event-ID' })}\n\n`);
      }
    } finally {
      clearInterval(heartbeat);
      res.end();
    }
  }
}

import { Controller, Delete, Get, Inject, Put, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { parseReplicaSpec } from '#libs/config';
import { LOGGER } from '#libs/messaging';
import type { Logger } from '#libs/telemetry';
import { sendError } from './http-errors.js';
import { InferenceService } from './inference.service.js';

/**
 * Replicas at run time, with the service token: `GET /admin/replicas`, `GET|PUT|DELETE
 * /admin/replicas/{id}`. A PUT body is a replica as in AGENTMESH_REPLICAS (id optional, keys only
 * by `apiKeyRef`); changes are stored in KV and applied by every router instance. A removed or
 * failed replica's sessions move on their next turn; a new or returning one takes new sessions.
 */
@Controller('admin/replicas')
export class AdminController {
  constructor(private readonly inference: InferenceService, @Inject(LOGGER) private readonly logger: Logger) {}

  private authorized(req: Request, res: Response): boolean {
    if (this.inference.token.verify(req.headers.authorization)) return true;
    sendError(res, 401, 'invalid_token', 'a valid service token is required (Authorization: Bearer ...)');
    return false;
  }

  @Get()
  list(@Req() req: Request, @Res() res: Response): void {
    if (!this.authorized(req, res)) return;
    res.json({ replicas: this.inference.registry.list() });
  }

  @Get(':id')
  get(@Req() req: Request, @Res() res: Response): void {
    if (!this.authorized(req, res)) return;
    const v = this.inference.registry.view(String(req.params.id));
    if (v === undefined) return sendError(res, 404, 'not_found', `no replica ${String(req.params.id)}`);
    res.json(v);
  }

  @Put(':id')
  async put(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!this.authorized(req, res)) return;
    const id = String(req.params.id);
    const parsed = parseReplicaSpec(req.body, 'body', { id });
    if (!parsed.spec) return sendError(res, 400, 'invalid_argument', parsed.problems.join('; '), {}, { fields: parsed.problems });
    try {
      const { created } = await this.inference.registry.put(parsed.spec);
      this.logger.info({ replica: id, created, models: parsed.spec.models, capacity: parsed.spec.capacity }, created ? 'replica added' : 'replica changed');
      res.status(created ? 201 : 200).json(this.inference.registry.view(id));
    } catch (e) {
      if (e instanceof RangeError) return sendError(res, 400, 'invalid_argument', e.message);
      this.logger.error({ err: e, replica: id }, 'could not store the replica');
      sendError(res, 503, 'unavailable', 'the replica store is unavailable');
    }
  }

  @Delete(':id')
  async delete(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (!this.authorized(req, res)) return;
    const id = String(req.params.id);
    try {
      if (!(await this.inference.registry.delete(id))) return sendError(res, 404, 'not_found', `no replica ${id}`);
      res.status(204).end();
    } catch (e) {
      this.logger.error({ err: e, replica: id }, 'could not delete the replica');
      sendError(res, 503, 'unavailable', 'the replica store is unavailable');
    }
  }
}

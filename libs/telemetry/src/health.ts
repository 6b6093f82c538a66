import { Controller, Get, Header, HttpCode, Injectable, Module, Res, type DynamicModule } from '@nestjs/common';
import type { Response } from 'express';
import { registry } from './metrics.js';

type Check = () => boolean | Promise<boolean>;

/** Readiness checks a service registers (broker connected, streams provisioned, ...). */
@Injectable()
export class Readiness {
  private readonly checks = new Map<string, Check>();
  register(name: string, check: Check): void {
    this.checks.set(name, check);
  }
  async evaluate(): Promise<{ ready: boolean; checks: Record<string, boolean> }> {
    const checks: Record<string, boolean> = {};
    for (const [name, check] of this.checks) {
      try { checks[name] = await check(); } catch { checks[name] = false; }
    }
    return { ready: Object.values(checks).every(Boolean), checks };
  }
}

@Controller()
export class HealthController {
  constructor(private readonly readiness: Readiness) {}

  /** Liveness: the process is up and its event loop answers. */
  @Get('healthz')
  healthz() {
    return { status: 'ok' };
  }

  /** Readiness: every registered dependency check passes. */
  @Get('readyz')
  async readyz(@Res() res: Response) {
    const r = await this.readiness.evaluate();
    res.status(r.ready ? 200 : 503).json({ status: r.ready ? 'ready' : 'not_ready', checks: r.checks });
  }

  @Get('metrics')
  @HttpCode(200)
  @Header('Content-Type', registry.contentType)
  metrics() {
    return registry.metrics();
  }
}

@Module({})
export class TelemetryModule {
  static forRoot(): DynamicModule {
    return { module: TelemetryModule, global: true, controllers: [HealthController], providers: [Readiness], exports: [Readiness] };
  }
}

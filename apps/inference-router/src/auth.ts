import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AppConfig } from '#libs/config';
import type { Logger } from '#libs/telemetry';

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

export const TOKEN_FILE = 'inference.token';

/**
 * The service token of the router's HTTP endpoints (`/v1/*`, `/admin/*`): AGENTMESH_INFERENCE_TOKEN,
 * else `<data>/inference.token`, generated there on first start (mode 0600) like the admin key.
 * Only its hash is kept in memory after start.
 */
export class ServiceToken {
  private readonly hash: Buffer;

  constructor(token: string) {
    this.hash = sha256(token);
  }

  static load(config: AppConfig, logger: Logger): ServiceToken {
    const configured = config.inference?.token?.reveal();
    if (configured) return new ServiceToken(configured);
    const file = join(config.dataDir, TOKEN_FILE);
    if (existsSync(file)) return new ServiceToken(readFileSync(file, 'utf8').trim());
    mkdirSync(config.dataDir, { recursive: true });
    const token = `amt_${randomBytes(32).toString('base64url')}`;
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    logger.info({ file }, 'generated the inference service token');
    return new ServiceToken(token);
  }

  /** Checks an `Authorization: Bearer <token>` header value. */
  verify(authorization: string | undefined): boolean {
    if (!authorization) return false;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return m !== null && timingSafeEqual(sha256(m[1]), this.hash);
  }
}

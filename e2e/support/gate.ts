import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP tool that holds every call until released: runs calling it stay in flight (cancel
 * targets, the concurrent-run cap). `calls` counts the requests that arrived, `waiting` the ones
 * held now.
 */
export class Gate {
  private readonly held: ServerResponse[] = [];
  calls = 0;
  private constructor(private readonly server: Server) {}
  static async open(): Promise<Gate> {
    const server = createServer();
    const gate = new Gate(server);
    server.on('request', (req, res) => {
      req.resume();
      req.on('end', () => { gate.calls++; gate.held.push(res); });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return gate;
  }
  get port(): number { return (this.server.address() as AddressInfo).port; }
  get waiting(): number { return this.held.length; }
  release(): void {
    for (const res of this.held.splice(0)) res.writeHead(200, { 'content-type': 'application/json' }).end('{"released":true}');
  }
  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

// Types for scripts/mesh.mjs (the embedded-mesh launcher), for the TypeScript e2e tests.
export declare const ROOT: string;
export declare const SERVICES: string[];
export declare const DEFAULT_PORTS: Record<string, number>;
export declare function freePort(): Promise<number>;
export interface ApiResponse { status: number; body: any; headers: Headers }
export type Api = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<ApiResponse>;
export declare function client(baseUrl: string, key: string): Api;
export interface Mesh {
  dataDir: string; natsUrl: string; natsPort: number; grpcPort: number; ports: Record<string, number>;
  adminKey: string; gatewayUrl: string;
  logFile(svc: string): string | undefined;
  pid(svc: string): number | undefined;
  kill(svc: string, signal?: NodeJS.Signals): Promise<void>;
  restart(svc: string): Promise<void>;
  killNats(): Promise<void>;
  restartNats(): Promise<void>;
  stop(): Promise<void>;
}
export declare function startMesh(opts?: { dataDir?: string; freePorts?: boolean; env?: Record<string, string>; quiet?: boolean }): Promise<Mesh>;
export declare const DEMO_TOOLS: Record<string, unknown>;
export declare const DEMO_AGENT: Record<string, unknown>;
export declare const DEMO_REACT_AGENT: Record<string, unknown>;
export declare const DEMO_REACT_INPUT: string;
export declare const DEMO_SIM_SCRIPT: string;
export declare function seedDemo(mesh: Mesh): Promise<{ tenant: string; key: string; keyFile: string }>;
export interface SseEvent { id: string; event: string; data: any }
export declare function followEvents(baseUrl: string, key: string, path: string, onEvent: (e: SseEvent) => void, opts?: { lastEventId?: number | string; signal?: AbortSignal }): Promise<void>;

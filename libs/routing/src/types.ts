/** How a session's turn was placed (the `outcome` label of agentmesh_router_assignments_total). */
export type RouteOutcome =
  /** The session kept its pinned replica (an affinity hit). */
  | 'hit'
  /** The session had no pin and was placed. */
  | 'new'
  /** The session's replica is down or gone; it was placed elsewhere. */
  | 'moved';

export interface RouteAccepted {
  readonly ok: true;
  readonly replica: string;
  readonly outcome: RouteOutcome;
  /** The replica the session was pinned to before a move. */
  readonly previous?: string;
}

export type RefusalReason =
  /** Every healthy replica is at capacity with sessions still inside their TTL. */
  | 'capacity'
  /** No replica is registered and up. */
  | 'no_replicas';

export interface RouteRefused {
  readonly ok: false;
  readonly reason: RefusalReason;
  /** When a retry may succeed: the earliest time a pinned session's TTL runs out. */
  readonly retryAfterMs: number;
}

export type RouteDecision = RouteAccepted | RouteRefused;

export interface ReplicaOptions {
  /** Maximum pinned sessions; default unlimited. */
  readonly capacity?: number;
  /** Relative size (more virtual nodes and a larger share of the load bound). Default 1. */
  readonly weight?: number;
  /** Starts healthy unless false. */
  readonly up?: boolean;
}

export interface ReplicaView {
  readonly id: string;
  readonly up: boolean;
  readonly capacity: number;
  readonly weight: number;
  /** Pinned sessions (for stateless policies: requests in flight). */
  readonly load: number;
}

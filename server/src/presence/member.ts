/** One tracked connection on one topic, as every node holds it. */
export interface Member {
  /** The presence id: the connection id of the session that first tracked it (stable across a restore). */
  id: string;
  userId: string;
  /** The state as the client tracked it (JSON text). */
  state: string;
  /** What subscribers receive as `data`: the state, with `userId` added when it is an object without one. */
  data: string;
  joinedAt: number;
  updatedAt: number;
  /** Raised by the owner on every change; a change older than what a node knows is ignored. */
  version: number;
  /** The node whose session holds it. */
  owner: string;
  /** Set while its connection is gone: it leaves at this time (ms) unless it is restored first. */
  leavingAt?: number;
}

/** A change to one topic's presence, as nodes send it to each other. */
export type Change =
  | { kind: "set"; topic: string; member: Member }
  | { kind: "leave"; topic: string; id: string; version: number; owner: string; reason: LeaveReason };

export type LeaveReason = "untrack" | "disconnect" | "timeout" | "node_gone";

/**
 * The data subscribers receive for a state: the state itself, with the
 * user id put in when the state is an object that lacks one (what the
 * usual "who is online" code keys its map by). The authenticated id is
 * also on every payload as `userId`.
 */
export function memberData(state: string, userId: string): string {
  if (!state.trimStart().startsWith("{")) return state;
  const parsed = JSON.parse(state) as Record<string, unknown>;
  if (Object.hasOwn(parsed, "userId")) return state;
  return JSON.stringify({ userId, ...parsed });
}

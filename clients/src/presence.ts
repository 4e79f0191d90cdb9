import type { PresenceMember } from "../../gen/chorus/v1/payload_pb.js";
import type { RealtimePayload } from "./types.js";

/** One member of a topic's presence: a connection of a user, with its state. */
export interface PresenceEntry<T = any> {
  userId: string;
  /** The member's presence id (the connection that first tracked it). */
  connectionId: string;
  /** Its state as tracked (with `userId` in it when the state is an object). Undefined when a very large room's snapshot left states out. */
  data: T;
}

/**
 * A channel's presence as the client keeps it: fed by `presence:join`,
 * `presence:update`, `presence:leave` and `presence:sync` in arrival order,
 * so it is what the server said last. Grouped by user on request (a user
 * with two tabs is two members with one user id).
 */
export class PresenceState {
  private readonly members = new Map<string, PresenceEntry>();

  /**
   * Applies a presence payload. Returns the members a `presence:sync` no
   * longer names (they left while this client was away): the channel tells
   * its listeners they left, so maps kept from joins and leaves stay right.
   */
  apply(payload: RealtimePayload): PresenceEntry[] {
    if (payload.type !== "presence") return [];
    let vanished: PresenceEntry[] = [];
    const id = payload.connectionId ?? "";
    switch (payload.event) {
      case "presence:join":
      case "presence:update":
        this.members.set(id, { userId: payload.userId ?? "", connectionId: id, data: payload.data });
        break;
      case "presence:leave":
        this.members.delete(id);
        break;
      case "presence:sync": {
        const sync = payload.data as { members?: Array<{ userId: string; connectionId: string; data?: unknown }>; partial?: boolean };
        const previous = new Map(this.members);
        this.members.clear();
        for (const m of sync.members ?? []) {
          // A partial sync (a very large room) names members without their states: keep what is known of them.
          const data = sync.partial ? previous.get(m.connectionId)?.data : m.data;
          this.members.set(m.connectionId, { userId: m.userId, connectionId: m.connectionId, data });
          previous.delete(m.connectionId);
        }
        vanished = [...previous.values()];
        break;
      }
    }
    return vanished;
  }

  get size(): number {
    return this.members.size;
  }

  clear(): void {
    this.members.clear();
  }

  list(): PresenceEntry[] {
    return [...this.members.values()];
  }

  /** Members grouped by user id. */
  byUser(): Record<string, PresenceEntry[]> {
    const out: Record<string, PresenceEntry[]> = {};
    for (const m of this.members.values()) (out[m.userId] ??= []).push(m);
    return out;
  }
}

/** A member as GetPresence / ListPresence return it, in the shape presence events give (`data` with `userId` in it). */
export function toPresenceEntry(m: PresenceMember): PresenceEntry & { joinedAt: number; updatedAt: number } {
  let data: unknown = null;
  try {
    data = m.state === "" ? null : JSON.parse(m.state);
  } catch {
    data = m.state;
  }
  if (data !== null && typeof data === "object" && !Array.isArray(data) && !Object.hasOwn(data, "userId")) data = { userId: m.userId, ...data };
  return { userId: m.userId, connectionId: m.connectionId, data, joinedAt: Number(m.joinedAt), updatedAt: Number(m.updatedAt) };
}

import type { RealtimeClient } from "../../clients/src/client.js";
import type { RealtimePayload } from "../../clients/src/types.js";

/**
 * Presence events a client receives on a topic, written short: `join ann`,
 * `update ann {"name":"Ann","cursor":1}` (the data without userId, which
 * every event carries), `leave ben`, `sync [ann,cat]` (users in order).
 */
export class PresenceLog {
  readonly events: string[] = [];
  readonly payloads: RealtimePayload[] = [];

  constructor(client: RealtimeClient, topic: string, withData = false) {
    // Listening for presence:sync by name asks for it even when nobody is present.
    client.channel(topic).on("presence:sync", () => {});
    client.channel(topic).on("*", (p) => {
      if (p.type !== "presence") return;
      this.payloads.push(p);
      this.events.push(describePresence(p, withData));
    });
  }

  /** The events received since `from` (an index into events). */
  since(from: number): string[] {
    return this.events.slice(from);
  }
}

export function describePresence(p: RealtimePayload, withData = false): string {
  const kind = p.event.replace("presence:", "");
  if (kind === "sync") {
    const members = (p.data as { members: Array<{ userId: string }> }).members;
    return `sync [${members.map((m) => m.userId).join(",")}]`;
  }
  if (!withData) return `${kind} ${p.userId}`;
  if (p.data === null || typeof p.data !== "object") return `${kind} ${p.userId} ${JSON.stringify(p.data)}`;
  const { userId: _, ...rest } = p.data as Record<string, unknown>;
  return `${kind} ${p.userId} ${JSON.stringify(rest)}`;
}

/**
 * The reference docs' OnlineUsers component as plain subscription code: a
 * Map keyed by data.userId, fed by join, update and leave.
 */
export function onlineUsers(client: RealtimeClient, roomId: string, user: { id: string; name: string }) {
  const online = new Map<string, Record<string, unknown>>();
  const channel = client.channel(`room/${roomId}`);
  void channel.track({ userId: user.id, name: user.name, color: "#FF5733", status: "active" });
  channel
    .on("presence:join", ({ data }) => online.set(data.userId, data))
    .on("presence:update", ({ data }) => online.set(data.userId, data))
    .on("presence:leave", ({ data }) => online.delete(data.userId))
    .subscribe();
  return {
    online,
    channel,
    unmount: async () => {
      await channel.untrack();
      await channel.unsubscribe();
    },
  };
}

/**
 * The reference docs' Chat component as plain subscription code: history,
 * messages, and a Map of who is online fed by join and leave only.
 */
export function chat(client: RealtimeClient, roomId: string, user: { id: string; name: string }) {
  const messages: unknown[] = [];
  const online = new Map<string, Record<string, unknown>>();
  const channel = client.channel(`chat/${roomId}`);
  void channel.getHistory(100).then((history) => messages.unshift(...history.map((h) => h.data)));
  void channel.track({ userId: user.id, name: user.name, status: "online" });
  channel
    .on("message", ({ data }) => messages.push(data))
    .on("presence:join", ({ data }) => online.set(data.userId, data))
    .on("presence:leave", ({ data }) => online.delete(data.userId))
    .subscribe();
  return {
    messages,
    online,
    channel,
    send: (text: string) => channel.publish("message", { id: crypto.randomUUID(), userId: user.id, userName: user.name, text }, { persist: true }),
    unmount: async () => {
      await channel.untrack();
      await channel.unsubscribe();
    },
  };
}

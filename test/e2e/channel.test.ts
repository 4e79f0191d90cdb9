import { afterEach, describe, expect, it } from "vitest";
import type { RealtimeClient } from "../../clients/src/client.js";
import type { RealtimePayload } from "../../clients/src/types.js";
import { transports } from "../helpers/clients.js";
import { testEngines } from "../helpers/nats.js";
import { codeOf, eventually, serverForSuite, sleep } from "../helpers/server.js";

const engines = await testEngines("channel");

let topicCounter = 0;
const freshTopic = () => `test/channel-${process.pid}-${++topicCounter}`;

describe.each(engines)("on the $name engine", (engine) => {
  // Bursts of hundreds of publishes: the per-connection rate limit is tested in limits.test.ts.
  const server = serverForSuite({ ...engine.env(), CHORUS_MAX_PAYLOAD_BYTES: "1024", CHORUS_MAX_PUBLISH_RATE: "0" });

  describe.each(transports)("channel behaviour over $name", (transport) => {
    const clients: RealtimeClient[] = [];
    const client = (token?: string) => {
      const c = transport.create({ url: server.url, token });
      clients.push(c);
      return c;
    };
    afterEach(() => {
      for (const c of clients.splice(0)) c.disconnect();
    });

    it("reports idle, connecting, connected, disconnected, to callbacks and to statuses() alike", async () => {
      const c = client("ada");
      const seen: string[] = [c.status];
      const stop = c.onStatusChange((s) => seen.push(s));
      const iterated: string[] = [];
      const loop = (async () => {
        for await (const status of c.statuses()) {
          iterated.push(status);
          if (status === "disconnected") break;
        }
      })();
      await c.connect();
      expect(c.userId).toBe("ada");
      c.disconnect();
      stop();
      await loop;
      expect(seen).toEqual(["idle", "connecting", "connected", "disconnected"]);
      expect(iterated).toEqual(["connecting", "connected", "disconnected"]);
    });

    it("says where a channel's subscription stands: closed, joining, joined, closed", async () => {
      const c = client();
      const channel = c.channel(freshTopic());
      expect(channel.state).toBe("closed");
      channel.subscribe();
      expect(channel.state).toBe("joining");
      await channel.ready();
      expect(channel.state).toBe("joined");
      await channel.unsubscribe();
      expect(channel.state).toBe("closed");
    });

    it("returns the same Channel for the same topic", () => {
      const c = client();
      expect(c.channel("chat/a")).toBe(c.channel("chat/a"));
      expect(c.channel("chat/a")).not.toBe(c.channel("chat/b"));
    });

    it("delivers a publish to every subscriber once, with the payload fields", async () => {
      const topic = freshTopic();
      const alice = client("alice");
      const bob = client("bob");
      const toAlice: RealtimePayload[] = [];
      const toBob: RealtimePayload[] = [];
      alice.channel(topic).on("message", (p) => toAlice.push(p)).subscribe();
      bob.channel(topic).on("message", (p) => toBob.push(p)).subscribe();
      await Promise.all([alice.channel(topic).ready(), bob.channel(topic).ready()]);

      const sent = await bob.channel(topic).publish("message", { text: "hi" });
      await eventually(() => toAlice.length === 1 && toBob.length === 1, "delivery to both");
      await sleep(50);
      expect(toAlice).toHaveLength(1);
      expect(toBob).toHaveLength(1);
      expect(toAlice[0]).toMatchObject({
        type: "event",
        topic,
        event: "message",
        data: { text: "hi" },
        userId: "bob",
        id: sent.id,
        timestamp: sent.timestamp,
        connectionId: bob.connectionId,
      });
      expect(toAlice[0]!.position).toBeUndefined();
    });

    it("keeps each publisher's order", async () => {
      const topic = freshTopic();
      const sub = client("sub");
      const pub = client("pub");
      const got: number[] = [];
      sub.channel(topic).on("n", ({ data }) => got.push(data)).subscribe();
      await sub.channel(topic).ready();
      const ch = pub.channel(topic);
      await Promise.all(Array.from({ length: 200 }, (_, i) => ch.publish("n", i, { persist: i % 2 === 0 })));
      await eventually(() => got.length === 200, "200 messages");
      expect(got).toEqual(Array.from({ length: 200 }, (_, i) => i));
    });

    it("'*' receives every event on the channel, a named listener only its own", async () => {
      const topic = freshTopic();
      const c = client();
      const all: string[] = [];
      const typing: string[] = [];
      c.channel(topic)
        .on("*", (p) => all.push(p.event))
        .on("typing", (p) => typing.push(p.event))
        .subscribe();
      await c.channel(topic).ready();
      await c.channel(topic).publish("message", 1);
      await c.channel(topic).publish("typing", 2);
      await c.channel(topic).publish("reaction", 3, { persist: true });
      await eventually(() => all.length === 3, "three events");
      expect(all).toEqual(["message", "typing", "reaction"]);
      expect(typing).toEqual(["typing"]);
    });

    it("off() removes one listener; unsubscribe() stops delivery and removes all", async () => {
      const topic = freshTopic();
      const listener = client();
      const publisher = client();
      const a: number[] = [];
      const b: number[] = [];
      const fa = ({ data }: RealtimePayload) => a.push(data);
      listener.channel(topic).on("m", fa).on("m", ({ data }) => b.push(data)).subscribe();
      await listener.channel(topic).ready();
      await publisher.channel(topic).publish("m", 1);
      await eventually(() => a.length === 1 && b.length === 1, "first message");
      listener.channel(topic).off("m", fa);
      await publisher.channel(topic).publish("m", 2);
      await eventually(() => b.length === 2, "second message");
      expect(a).toEqual([1]);

      await listener.channel(topic).unsubscribe();
      expect(listener.channel(topic).subscribed).toBe(false);
      // Listeners are gone, and so is the server-side subscription: a fresh
      // listener added without subscribing hears nothing.
      const after: number[] = [];
      listener.channel(topic).on("m", ({ data }) => after.push(data));
      await publisher.channel(topic).publish("m", 3);
      await sleep(200);
      expect(b).toEqual([1, 2]);
      expect(after).toEqual([]);
    });

    it("survives a remount (React StrictMode): unsubscribe, then at once on() and subscribe() again, tracked or not", async () => {
      const topic = freshTopic();
      const member = client("remounted");
      const publisher = client("publisher");
      const observer = client("observer");
      const presence: string[] = [];
      observer.channel(topic).on("presence:join", ({ data }) => presence.push(`join ${data.userId}`)).on("presence:leave", ({ data }) => presence.push(`leave ${data.userId}`)).subscribe();
      await observer.channel(topic).ready();

      // The effect as the reference components write it, run twice: mount, cleanup, mount.
      const got: Array<[string, number]> = [];
      const mount = (name: string) => {
        const channel = member.channel(topic);
        channel.track({ name });
        channel.on("m", ({ data }) => got.push([name, data])).subscribe();
        return () => void channel.unsubscribe(); // untracks as it leaves
      };
      const cleanup = mount("first");
      cleanup();
      mount("second");
      await member.channel(topic).ready();
      await eventually(() => presence.at(-1) === "join remounted", "the remounted member");
      for (let n = 0; n < 5; n++) await publisher.channel(topic).publish("m", n);
      await eventually(() => got.length >= 5, "the messages");
      await sleep(200);
      expect(got).toEqual([0, 1, 2, 3, 4].map((n) => ["second", n])); // once each, to the listener of the second mount only
      expect(member.channel(topic).subscribed).toBe(true);
      expect(presence.filter((e) => e === "join remounted").length - presence.filter((e) => e === "leave remounted").length).toBe(1);
    });

    it("returns persisted messages newest first and pages back with before", async () => {
      const topic = freshTopic();
      const c = client("historian");
      for (let i = 0; i < 25; i++) await c.channel(topic).publish("message", { i }, { persist: i !== 3 });
      const first = await c.channel(topic).getHistory(10);
      expect(first.map((m) => m.data.i)).toEqual([24, 23, 22, 21, 20, 19, 18, 17, 16, 15]);
      expect(first[0]).toMatchObject({ room_id: topic, user_id: "historian", event: "message", seq: 24 });
      expect(typeof first[0]!.created_at).toBe("number");
      const second = await c.channel(topic).getHistory(10, first[first.length - 1]!.created_at);
      expect(second.map((m) => m.data.i)).toEqual([14, 13, 12, 11, 10, 9, 8, 7, 6, 5]);
      const third = await c.channel(topic).getHistory(10, second[second.length - 1]!.created_at);
      // 3 was ephemeral: never stored.
      expect(third.map((m) => m.data.i)).toEqual([4, 2, 1, 0]);
      expect(await c.channel(freshTopic()).getHistory()).toEqual([]);
    });

    it("rejects bad input with the right code and keeps the session usable", async () => {
      const c = client();
      const topic = freshTopic();
      expect(await codeOf(c.channel("chat//general").publish("m", 1))).toBe("InvalidArgument");
      expect(await codeOf(c.channel("has space/x").subscribe().ready())).toBe("InvalidArgument");
      expect(await codeOf(c.channel(`${"x".repeat(300)}/y`).publish("m", 1))).toBe("InvalidArgument");
      expect(await codeOf(c.channel(topic).publish("", 1))).toBe("InvalidArgument");
      expect(await codeOf(c.channel(topic).publish("system:lagged", 1))).toBe("InvalidArgument");
      expect(await codeOf(c.channel(topic).publish("m", "x".repeat(2000)))).toBe("ResourceExhausted");
      // The limit is in UTF-8 bytes (1024 here), counted before anything is sent: 2-byte and 4-byte characters, just under and just over.
      await c.channel(topic).publish("m", "é".repeat(511)); // "…" = 2 + 1022 bytes
      await c.channel(topic).publish("m", "🎉".repeat(255)); // 2 + 1020 bytes
      await expect(c.channel(topic).publish("m", "é".repeat(512))).rejects.toThrow("data is 1026 bytes; the server accepts at most 1024");
      await expect(c.channel(topic).publish("m", "🎉".repeat(256))).rejects.toThrow("data is 1026 bytes; the server accepts at most 1024");
      expect(await codeOf(c.channel("orders").publish("INSERT", { id: 1 }))).toBe("PermissionDenied");
      expect(await codeOf(c.channel(topic).getHistory(1001))).toBe("InvalidArgument");
      expect(await codeOf(c.channel(topic).getHistory(-1 as number))).toBe("InvalidArgument");
      // Nothing half-applied: the oversized message is not in history, and the session still works.
      const got: unknown[] = [];
      c.channel(topic).on("m", ({ data }) => got.push(data)).subscribe();
      await c.channel(topic).ready();
      await c.channel(topic).publish("m", "fine", { persist: true });
      await eventually(() => got.length === 1, "delivery after errors");
      expect((await c.channel(topic).getHistory()).map((m) => m.data)).toEqual(["fine"]);
    });
  });
});

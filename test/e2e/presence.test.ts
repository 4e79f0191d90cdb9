import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { NodeClient, transports } from "../helpers/clients.js";
import { freePort, testEngines } from "../helpers/nats.js";
import { chat, onlineUsers, PresenceLog } from "../helpers/presence.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { eventually, serverForSuite, sleep } from "../helpers/server.js";

const engines = await testEngines("presence");
const GRACE_MS = 3000;

describe.each(engines)("presence on the $name engine", (engine) => {
  const server = serverForSuite({ ...engine.env(), CHORUS_PRESENCE_GRACE_MS: String(GRACE_MS), CHORUS_MAX_PUBLISH_RATE: "0", CHORUS_API_KEYS: "presence-key" });
  let proxy: LoopbackProxy;
  beforeAll(async () => {
    proxy = await LoopbackProxy.start(server.port);
  });
  afterAll(() => proxy.close());

  describe.each(transports)("over $name", (transport) => {
    it("three clients: joins, an update in place, leaves and a late subscriber's joins then sync, in order", async () => {
      const room = `room/three-${transport.name.split(" ")[0]}`;
      const observer = new NodeClient({ url: server.url, token: "oscar" });
      const seen = new PresenceLog(observer, room, true);
      await observer.channel(room).subscribe().ready();
      await eventually(() => seen.events.length === 1, "the empty room's sync");
      expect(seen.events).toEqual(["sync []"]);

      const [ann, ben, cat] = ["ann", "ben", "cat"].map((token) => transport.create({ url: server.url, token }));
      // Tracked before subscribing: announced once subscribed.
      const annTracked = ann!.channel(room).track({ name: "Ann" });
      ann!.channel(room).subscribe();
      await annTracked;
      await ben!.channel(room).subscribe().ready();
      await ben!.channel(room).track({ name: "Ben" });
      await cat!.channel(room).subscribe().ready();
      await cat!.channel(room).track("just a string");
      await eventually(() => seen.events.length === 4, "three joins");

      await ann!.channel(room).track({ name: "Ann", cursor: 1 });
      await ann!.channel(room).track({ name: "Ann", cursor: 2 });
      await ben!.channel(room).untrack();
      await eventually(() => seen.events.length === 7, "two updates and a leave");

      const late = new NodeClient({ url: server.url, token: "lou" });
      const lateSeen = new PresenceLog(late, room, true);
      await late.channel(room).subscribe().ready();
      await eventually(() => lateSeen.events.length === 3, "the late subscriber's snapshot");
      expect(lateSeen.events).toEqual(['join ann {"name":"Ann","cursor":2}', 'join cat "just a string"', "sync [ann,cat]"]);
      expect(late.channel(room).presence()).toEqual({
        ann: [{ userId: "ann", connectionId: ann!.connectionId, data: { userId: "ann", name: "Ann", cursor: 2 } }],
        cat: [{ userId: "cat", connectionId: cat!.connectionId, data: "just a string" }],
      });

      // A clean disconnect leaves at once, well inside the grace period.
      const before = Date.now();
      cat!.disconnect();
      await eventually(() => seen.events.length === 8, "cat's leave", GRACE_MS - 500);
      const leftAfter = Date.now() - before;

      expect(seen.events).toEqual([
        "sync []",
        'join ann {"name":"Ann"}',
        'join ben {"name":"Ben"}',
        'join cat "just a string"',
        'update ann {"name":"Ann","cursor":1}',
        'update ann {"name":"Ann","cursor":2}',
        'leave ben {"name":"Ben"}',
        'leave cat "just a string"',
      ]);
      // Every event names the member's user and connection; the data carries the user id too.
      const annJoin = seen.payloads[1]!;
      expect(annJoin).toMatchObject({ type: "presence", topic: room, userId: "ann", connectionId: ann!.connectionId, data: { userId: "ann", name: "Ann" } });
      expect(leftAfter).toBeLessThan(1000);
      expect(observer.channel(room).presence()).toEqual({ ann: [expect.objectContaining({ connectionId: ann!.connectionId })] });
      for (const c of [ann!, ben!, observer, late]) c.disconnect();
    });
  });

  it("the reference OnlineUsers and Chat logic end with the right members through tabs, updates, drops and reconnects", async () => {
    const roomId = "reference";
    const viewer = new NodeClient({ url: server.url, token: "vic" });
    const vicOnline = onlineUsers(viewer, roomId, { id: "vic", name: "Vic" });
    const vicChat = chat(viewer, roomId, { id: "vic", name: "Vic" });
    const names = (m: Map<string, Record<string, unknown>>) => [...m.keys()].sort();

    const ann1 = new NodeClient({ url: server.url, token: "ann" });
    const annOnline1 = onlineUsers(ann1, roomId, { id: "ann", name: "Ann" });
    const annChat1 = chat(ann1, roomId, { id: "ann", name: "Ann" });
    // Ben goes through the proxy: his connection will drop.
    const ben = transports[1].create({ url: proxy.url, token: "ben" });
    onlineUsers(ben, roomId, { id: "ben", name: "Ben" });
    chat(ben, roomId, { id: "ben", name: "Ben" });
    await eventually(() => names(vicOnline.online).join() === "ann,ben,vic" && names(vicChat.online).join() === "ann,ben,vic", "everyone online");

    // Ann's status changes: one update, the map holds the new state.
    await annOnline1.channel.track({ userId: "ann", name: "Ann", color: "#FF5733", status: "away" });
    await eventually(() => vicOnline.online.get("ann")?.status === "away", "ann away");

    // Ann opens a second tab, then closes the first: she is still online in both components.
    const ann2 = transports[1].create({ url: server.url, token: "ann" });
    const annOnline2 = onlineUsers(ann2, roomId, { id: "ann", name: "Ann" });
    const annChat2 = chat(ann2, roomId, { id: "ann", name: "Ann" });
    await eventually(() => Object.keys(annOnline2.channel.presence()).length === 3 && (annChat2.channel.presence().ann?.length ?? 0) === 2, "ann's second tab present");
    await annOnline1.unmount();
    await annChat1.unmount();
    ann1.disconnect();
    await sleep(300);
    expect(names(vicOnline.online)).toEqual(["ann", "ben", "vic"]);
    expect(names(vicChat.online)).toEqual(["ann", "ben", "vic"]);
    expect(viewer.channel("room/reference").presence().ann).toHaveLength(1);

    // Ben's network blips: he comes back within the grace period, restored; nobody sees him go.
    proxy.dropAll();
    await eventually(() => ben.status === "reconnecting", "ben reconnecting");
    await eventually(() => ben.status === "connected", "ben back", GRACE_MS);
    await sleep(GRACE_MS);
    expect(names(vicOnline.online)).toEqual(["ann", "ben", "vic"]);
    expect(names(vicChat.online)).toEqual(["ann", "ben", "vic"]);

    // A message still goes around; then Ann's last tab goes.
    await annChat2.send("bye all");
    await eventually(() => vicChat.messages.some((m) => (m as { text?: string }).text === "bye all"), "ann's message");
    await annOnline2.unmount();
    await annChat2.unmount();
    await eventually(() => names(vicOnline.online).join() === "ben,vic" && names(vicChat.online).join() === "ben,vic", "ann gone");
    expect(Object.keys(viewer.channel("chat/reference").presence()).sort()).toEqual(["ben", "vic"]);
    for (const c of [viewer, ann2, ben]) c.disconnect();
  });

  it("a drop within the grace period is invisible; one beyond it is one leave and, on return, one join", async () => {
    const room = "room/blips";
    const observer = new NodeClient({ url: server.url, token: "oscar" });
    const seen = new PresenceLog(observer, room);
    await observer.channel(room).subscribe().ready();
    const blipper = new NodeClient({ url: proxy.url, token: "bea" });
    await blipper.channel(room).subscribe().ready();
    await blipper.channel(room).track({ typing: false });
    await eventually(() => seen.events.length === 2, "bea's join");
    const memberId = seen.payloads[1]!.connectionId;

    // Within: the connection drops and the client is back (and restored) before the grace period ends.
    proxy.dropAll();
    await eventually(() => blipper.status === "reconnecting", "reconnecting");
    await eventually(() => blipper.status === "connected", "back", GRACE_MS);
    await sleep(GRACE_MS + 500);
    expect(seen.since(2)).toEqual([]);
    // Restored under the same presence id, with its state; an update after it is an update.
    await blipper.channel(room).track({ typing: true });
    await eventually(() => seen.events.length === 3, "an update");
    expect(seen.payloads[2]).toMatchObject({ event: "presence:update", connectionId: memberId, data: { typing: true } });

    // Beyond: nothing answers where the client reconnects, for longer than the grace period.
    const dead = await freePort();
    const target = server.port;
    proxy.retarget(dead);
    const droppedAt = Date.now();
    proxy.dropAll();
    await eventually(() => seen.events.length === 4, "bea's leave", GRACE_MS + 2000);
    const leftAfter = Date.now() - droppedAt;
    expect(seen.events[3]).toBe("leave bea");
    proxy.retarget(target);
    await eventually(() => seen.events.length === 5, "bea's join on return", 20_000);
    await sleep(500);
    expect(seen.since(3)).toEqual(["leave bea", "join bea"]);
    expect(seen.payloads[4]!.data).toEqual({ userId: "bea", typing: true });
    console.log(`presence: a connection dropped without a goodbye left after ${leftAfter} ms (grace ${GRACE_MS} ms)`);
    expect(leftAfter).toBeGreaterThanOrEqual(GRACE_MS - 100);
    expect(leftAfter).toBeLessThan(GRACE_MS + 1000);
    observer.disconnect();
    blipper.disconnect();
  });

  it("a client back from a drop hears of the members that left while it was away, even when the room is now empty", async () => {
    const room = "room/away";
    const dead = await freePort();
    const away = await LoopbackProxy.start(server.port);
    try {
      const traveller = new NodeClient({ url: away.url, token: "tia" });
      const online = new Map<string, unknown>();
      traveller
        .channel(room)
        .on("presence:join", ({ data }) => online.set(data.userId, data))
        .on("presence:leave", ({ data }) => online.delete(data.userId))
        .subscribe();
      const stayer = new NodeClient({ url: server.url, token: "sam" });
      const leaver = new NodeClient({ url: server.url, token: "lea" });
      for (const c of [stayer, leaver]) {
        await c.channel(room).subscribe().ready();
        await c.channel(room).track({});
      }
      await eventually(() => online.size === 2, "two members seen");

      away.retarget(dead);
      away.dropAll();
      await eventually(() => traveller.status === "reconnecting", "away");
      await leaver.channel(room).untrack();
      away.retarget(server.port);
      await eventually(() => traveller.status === "connected" && online.size === 1, "back, with lea gone", 10_000);
      expect([...online.keys()]).toEqual(["sam"]);

      away.retarget(dead);
      away.dropAll();
      await eventually(() => traveller.status === "reconnecting", "away again");
      await stayer.channel(room).untrack();
      away.retarget(server.port);
      await eventually(() => traveller.status === "connected" && online.size === 0, "back, to an empty room", 10_000);
      expect(traveller.channel(room).presence()).toEqual({});
      for (const c of [traveller, stayer, leaver]) c.disconnect();
    } finally {
      await away.close();
    }
  });

  it("a subscriber that does not listen for presence:sync hears nothing of presence in a room without members", async () => {
    const client = new NodeClient({ url: server.url, token: "quiet" });
    const events: string[] = [];
    client.channel("room/quiet").on("*", (p) => events.push(p.event)).subscribe();
    await client.channel("room/quiet").ready();
    await client.channel("room/quiet").publish("m", { hi: 1 });
    await eventually(() => events.length > 0, "the message");
    await sleep(100);
    expect(events).toEqual(["m"]);
    client.disconnect();
  });

  it("GetPresence (grouped by user), its stats and ServerService.ListPresence name every member once", async () => {
    const room = "room/lists";
    const clients = ["ann", "ann", "ben"].map((token) => new NodeClient({ url: server.url, token }));
    for (const [i, c] of clients.entries()) {
      await c.channel(room).subscribe().ready();
      await c.channel(room).track({ tab: i });
    }
    await eventually(() => Object.values(clients[2]!.channel(room).presence()).flat().length === 3, "three members");

    // Asked by someone who does not subscribe at all.
    const outsider = new NodeClient({ url: server.url, token: "zed" });
    const members = await outsider.channel(room).getPresence();
    expect(members.map((m) => [m.userId, m.data]).sort()).toEqual([
      ["ann", { userId: "ann", tab: 0 }],
      ["ann", { userId: "ann", tab: 1 }],
      ["ben", { userId: "ben", tab: 2 }],
    ]);
    expect(members.every((m) => m.joinedAt > 0 && m.updatedAt >= m.joinedAt)).toBe(true);
    expect(await outsider.channel(room).presenceStats()).toEqual({ connections: 3, users: 2 });
    expect(await outsider.channel("room/empty").presenceStats()).toEqual({ connections: 0, users: 0 });

    const sdk = createServerSdk({ url: server.url, apiKey: "presence-key" });
    const listed = await sdk.presence(room);
    expect(listed.users).toBe(2);
    expect(listed.members.map((m) => m.connectionId).sort()).toEqual(clients.map((c) => c.connectionId).sort());
    sdk.close();
    for (const c of [...clients, outsider]) c.disconnect();
  });
});

import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as http from "node:http";
import { SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { RealtimeService } from "../../gen/chorus/v1/realtime_pb.js";
import type { RealtimeClient } from "../../clients/src/client.js";
import { NodeClient, transports } from "../helpers/clients.js";
import { PresenceLog } from "../helpers/presence.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { codeOf, eventually, serverForSuite, sleep } from "../helpers/server.js";

const SECRET = "presence-secret-that-is-long-enough-for-hs256";
const token = (sub: string) =>
  new SignJWT({}).setSubject(sub).setIssuedAt().setExpirationTime("1h").setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));

/** What the app's back end hears: every attempt, and the events it accepted. */
const attempts: Array<{ event: string; reason: string; user_id: string; idempotency_key: string; header: string | undefined }> = [];
const accepted = new Map<string, { event: string; reason: string; user_id: string; topic?: string }>();
const hook = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const event = JSON.parse(body) as (typeof attempts)[number] & { topic?: string };
    attempts.push({ ...event, header: req.headers["idempotency-key"] as string | undefined });
    // The back end fails the first two attempts at each event.
    if (attempts.filter((a) => a.idempotency_key === event.idempotency_key).length <= 2) return void res.writeHead(503).end();
    accepted.set(event.idempotency_key, event);
    res.writeHead(204).end();
  });
});
await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
afterAll(() => hook.close());

const server = serverForSuite({
  CHORUS_JWT_SECRET: SECRET,
  CHORUS_PERMISSIONS: JSON.stringify({ subscribe: ["room/*", "chat/*", "orders"], publish: ["chat/*"], presence: ["room/*", "orders"] }),
  CHORUS_MAX_PRESENCE_STATE_BYTES: "1024",
  CHORUS_PRESENCE_RATE: "5",
  CHORUS_MAX_PRESENCE_MEMBERS: "4",
  CHORUS_PRESENCE_GRACE_MS: "500",
  CHORUS_LEAVE_HOOK_URL: `http://127.0.0.1:${(hook.address() as { port: number }).port}/left`,
});

async function member(user: string, room: string, transport: (typeof transports)[number] = transports[0]): Promise<RealtimeClient> {
  // Refusals are what these tests provoke: they are asserted, not logged.
  const client = transport.create({ url: server.url, token: await token(user), onError: () => {} });
  await client.channel(room).subscribe().ready();
  return client;
}

describe.each(transports)("bad presence input over $name gets its code and changes nothing", (transport) => {
  it("a state over the limit, a state that is not JSON, a topic without the presence permission, a table topic", async () => {
    const room = `room/bad-${transport.name.split(" ")[0]}`;
    const observer = await member("olga", room);
    const seen = new PresenceLog(observer, room, true);
    const client = await member("mal", room, transport);
    await client.channel(room).track({ name: "Mal" });
    await eventually(() => seen.events.length === 1, "mal's join");

    expect(await codeOf(client.channel(room).track({ name: "x".repeat(2000) }))).toBe("ResourceExhausted");
    expect(await codeOf(client.channel(room).track({ cycle: BigInt(1) }))).toBe("InvalidArgument");
    // A stock Connect client sends what the SDK would not: text that is not JSON.
    const raw = createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const headers = { authorization: `Bearer ${await token("mal")}` };
    const listen = new AbortController();
    const frames = raw.listen({}, { headers, signal: listen.signal })[Symbol.asyncIterator]();
    const welcome = (await frames.next()).value.frames[0].kind.value;
    expect(await codeOf(raw.track({ sessionId: welcome.sessionId, topic: room, state: "{not json" }, { headers }))).toBe("InvalidArgument");
    expect(await codeOf(raw.track({ sessionId: welcome.sessionId, topic: room, state: "{}", restore: "x".repeat(10_000) }, { headers }))).toBe("InvalidArgument");
    // Table topics carry database changes, not presence.
    expect(await codeOf(raw.track({ sessionId: welcome.sessionId, topic: "orders", state: "{}" }, { headers }))).toBe("FailedPrecondition");

    await client.channel("chat/general").subscribe().ready();
    expect(await codeOf(client.channel("chat/general").track({ name: "Mal" }))).toBe("PermissionDenied");
    listen.abort();

    // Nothing of it reached anyone, and the state held is the one before.
    await sleep(300);
    expect(seen.events).toEqual(['join mal {"name":"Mal"}']);
    const [held] = await observer.channel(room).getPresence();
    expect(held).toMatchObject({ userId: "mal", data: { userId: "mal", name: "Mal" } });
    expect((await observer.channel("chat/general").getPresence()).length).toBe(0);
    // And the member is still whole: an update after the refusals is one update.
    await client.channel(room).track({ name: "Mal", mood: "better" });
    await eventually(() => seen.events.length === 2, "the update");
    expect(seen.events[1]).toBe('update mal {"name":"Mal","mood":"better"}');
    client.disconnect();
    observer.disconnect();
  });

  it("an update flood is refused past the rate, and the room goes on unharmed", async () => {
    const room = `room/flood-${transport.name.split(" ")[0]}`;
    const observer = await member("olga", room);
    const seen = new PresenceLog(observer, room, true);
    const flooder = await member("fred", room, transport);
    const calm = await member("cal", room);
    await calm.channel(room).track({ n: 0 });
    await sleep(1100); // a full budget for fred
    const results = await Promise.all(Array.from({ length: 40 }, (_, n) => codeOf(flooder.channel(room).track({ n })).catch(() => "OK")));
    const ok = results.filter((r) => r === "OK").length;
    expect(results.filter((r) => r === "ResourceExhausted").length).toBe(40 - ok);
    expect(ok).toBeGreaterThanOrEqual(4);
    expect(ok).toBeLessThanOrEqual(7);

    // Cal's update still arrives at once.
    const sentAt = Date.now();
    await calm.channel(room).track({ n: 1 });
    await eventually(() => seen.events.includes('update cal {"n":1}'), "cal's update", 1000);
    expect(Date.now() - sentAt).toBeLessThan(500);
    // What the others saw of fred is exactly what was accepted: one join, then updates.
    const fred = seen.events.filter((e) => e.includes(" fred "));
    expect(fred.length).toBe(ok);
    expect(fred[0]).toMatch(/^join fred/);
    expect(fred.slice(1).every((e) => e.startsWith("update fred"))).toBe(true);
    for (const c of [flooder, calm, observer]) c.disconnect();
  });
});

it("a room is full at its member limit, and a restore cannot take over someone else's member", async () => {
  const room = "room/full";
  const clients = await Promise.all(["a", "b", "c", "d", "e"].map((u) => member(u, room)));
  for (const c of clients.slice(0, 4)) await c.channel(room).track({});
  expect(await codeOf(clients[4]!.channel(room).track({}))).toBe("ResourceExhausted");
  await clients[3]!.channel(room).untrack();
  await clients[4]!.channel(room).track({});

  // Naming another user's presence id as "restore" gets a member of one's own, not theirs.
  const thief = await member("thief", "room/steal");
  const victim = await member("victim", "room/steal");
  await victim.channel("room/steal").track({ who: "victim" });
  const raw = createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
  const headers = { authorization: `Bearer ${await token("thief")}` };
  const listen = new AbortController();
  const frames = raw.listen({}, { headers, signal: listen.signal })[Symbol.asyncIterator]();
  const welcome = (await frames.next()).value.frames[0].kind.value;
  const reply = await raw.track({ sessionId: welcome.sessionId, topic: "room/steal", state: '{"who":"thief"}', restore: victim.connectionId! }, { headers });
  expect(reply.member?.connectionId).not.toBe(victim.connectionId);
  const members = await thief.channel("room/steal").getPresence();
  expect(members.map((m) => [m.userId, (m.data as { who: string }).who]).sort()).toEqual([
    ["thief", "thief"],
    ["victim", "victim"],
  ]);
  listen.abort();
  for (const c of [...clients, thief, victim]) c.disconnect();
});

it("the leave hook hears every leave and every connection end once, through the back end's failures", async () => {
  const room = "room/hooked";
  attempts.length = 0;
  accepted.clear();
  const untracker = await member("una", room);
  const closer = await member("cody", room);
  // Dora's connection will just go (no goodbye): she leaves when the grace period ends.
  const proxy = await LoopbackProxy.start(server.port);
  const dropper = new NodeClient({ url: proxy.url, token: await token("dora") });
  await dropper.channel(room).subscribe().ready();
  for (const c of [untracker, closer, dropper]) await c.channel(room).track({});
  await untracker.channel(room).untrack();
  closer.disconnect();
  await proxy.close();
  dropper.disconnect();

  const leaves = () => [...accepted.values()].filter((e) => e.event === "presence_leave" && e.topic === room);
  await eventually(() => leaves().length === 3, "three leaves accepted", 10_000);
  expect(leaves().map((e) => [e.user_id, e.reason]).sort()).toEqual([
    ["cody", "disconnect"],
    ["dora", "timeout"],
    ["una", "untrack"],
  ]);
  await eventually(() => [...accepted.values()].filter((e) => e.event === "disconnect" && ["cody", "dora"].includes(e.user_id)).length === 2, "two connection ends", 10_000);
  // Each accepted once, after two failed attempts with the same key (header and body alike).
  await sleep(1500);
  const byKey = new Map<string, number>();
  for (const a of attempts) byKey.set(a.idempotency_key, (byKey.get(a.idempotency_key) ?? 0) + 1);
  for (const key of accepted.keys()) expect(byKey.get(key)).toBe(3);
  expect(attempts.every((a) => a.header === a.idempotency_key)).toBe(true);
  untracker.disconnect();
});

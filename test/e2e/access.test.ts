// Access control and fair limits that hold whatever a client sends:
// `{sub}` is the user's id taken literally, replay from a position honours
// the history permission, client-chosen ids belong to their publisher,
// every RPC that publishes shares one budget per user, string fields are
// bounded before they reach the engine, and history pages are bounded in
// bytes, on both engines.
import { create } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { PayloadType, StreamPositionSchema } from "../../gen/chorus/v1/payload_pb.js";
import { RealtimeService } from "../../gen/chorus/v1/realtime_pb.js";
import { ServerService } from "../../gen/chorus/v1/server_pb.js";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { NodeClient } from "../helpers/clients.js";
import { testEngines } from "../helpers/nats.js";
import { codeOf, serverForSuite, sleep } from "../helpers/server.js";

const SECRET = "access-test-secret-long-enough-for-hs256";
const WINDOW_MS = 1500;

const token = (sub: string) => new SignJWT({}).setSubject(sub).setExpirationTime("1h").setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));
const bearer = async (sub: string) => ({ headers: { authorization: `Bearer ${await token(sub)}` } });

describe("access control", () => {
  const server = serverForSuite({
    CHORUS_JWT_SECRET: SECRET,
    CHORUS_API_KEYS: "backend-key",
    CHORUS_RECOVERY_WINDOW_MS: String(WINDOW_MS),
    CHORUS_MAX_PUBLISH_RATE: "20",
    CHORUS_PERMISSIONS: JSON.stringify({
      subscribe: ["chat/*", "notifications/{sub}", "open/*"],
      publish: ["chat/*", "open/*"],
      history: ["chat/*", "notifications/{sub}"],
    }),
  });
  const sdk = () => createServerSdk({ url: server.url, apiKey: "backend-key" });
  const realtime = (): Client<typeof RealtimeService> => createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));

  it("substitutes {sub} literally, whatever characters the user id holds", async () => {
    for (const sub of ["$`bob", "$'bob", "$&", "*", "bob/x", "..bob", "bob*"]) {
      const client = new NodeClient({ url: server.url, token: await token(sub), reconnect: false });
      expect(await codeOf(client.channel("notifications/bob").subscribe().ready()), `user ${sub}`).toBe("PermissionDenied");
      client.disconnect();
    }
    for (const sub of ["bob", ".."]) {
      const client = new NodeClient({ url: server.url, token: await token(sub), reconnect: false });
      await client.channel(`notifications/${sub}`).subscribe().ready(); // their own
      client.disconnect();
    }
  });

  it("replays from a position only what the user may read: older messages need the history permission", { timeout: 20_000 }, async () => {
    const backend = sdk();
    for (const topic of ["open/room", "chat/room"]) for (let i = 1; i <= 3; i++) await backend.socket.emit("m", { i }, topic, { persist: true });
    await sleep(WINDOW_MS + 300);
    for (const topic of ["open/room", "chat/room"]) for (let i = 4; i <= 5; i++) await backend.socket.emit("m", { i }, topic, { persist: true });
    backend.close();

    /** What a Listen session of `sub` receives after subscribing to `topic` from the start. */
    const replay = async (topic: string) => {
      const client = realtime();
      const abort = new AbortController();
      const stream = client.listen({}, { ...(await bearer("carol")), signal: abort.signal })[Symbol.asyncIterator]();
      const welcome = (await stream.next()).value.frames[0].kind.value;
      await client.subscribe({ sessionId: welcome.sessionId, topic, since: create(StreamPositionSchema, { seq: 0n }) }, await bearer("carol"));
      const got: Array<{ type: PayloadType; event: string; data: string; seq: bigint }> = [];
      while (!got.some((p) => p.data.includes('"i":5'))) {
        for (const f of (await stream.next()).value.frames) if (f.kind.case === "payload") got.push(f.kind.value);
      }
      abort.abort();
      return got;
    };
    const withoutHistory = await replay("open/room");
    expect(withoutHistory[0]).toMatchObject({ type: PayloadType.SYSTEM, event: "system:history_gap" });
    expect(JSON.parse(withoutHistory[0]!.data)).toEqual({ reason: "not_permitted", missed_from: 1, missed_to: 3 });
    expect(withoutHistory.slice(1).map((p) => Number(p.seq))).toEqual([4, 5]);
    expect((await replay("chat/room")).map((p) => Number(p.seq))).toEqual([1, 2, 3, 4, 5]);
    expect(await codeOf(realtime().getHistory({ topic: "open/room" }, await bearer("carol")))).toBe("PermissionDenied");
  });

  it("scopes client-chosen ids to their publisher: two users may both use id 1", async () => {
    const alice = new NodeClient({ url: server.url, token: await token("alice") });
    const bob = new NodeClient({ url: server.url, token: await token("bob") });
    const first = await alice.channel("chat/ids").publish("m", "alice's", { persist: true, id: "1" });
    const second = await bob.channel("chat/ids").publish("m", "bob's", { persist: true, id: "1" });
    const retried = await alice.channel("chat/ids").publish("m", "alice's", { persist: true, id: "1" });
    expect([first.position?.seq, second.position?.seq, retried.position?.seq]).toEqual([1, 2, 1]);
    const emitted = await sdk().socket.emit("m", "the back end's", "chat/ids", { persist: true, id: "1" });
    expect(emitted.position?.seq).toBe(3);
    expect((await alice.channel("chat/ids").getHistory(10)).map((m) => m.data)).toEqual(["the back end's", "bob's", "alice's"]);
    alice.disconnect();
    bob.disconnect();
  });

  it("applies the publish rate per user, with or without a session", async () => {
    const client = realtime();
    const auth = await bearer("flooder");
    // The session is up before the clock starts, so the window below holds only the calls.
    const session = new NodeClient({ url: server.url, token: await token("flooder") });
    await session.channel("chat/rate-ready").subscribe().ready();
    const started = performance.now();
    const [unary, overSession] = await Promise.all([
      Promise.allSettled(Array.from({ length: 40 }, (_, i) => client.publish({ topic: "chat/rate", event: "m", data: String(i) }, auth))),
      Promise.allSettled(Array.from({ length: 40 }, (_, i) => session.channel("chat/rate").publish("m", `s${i}`))),
    ]);
    const seconds = (performance.now() - started) / 1000;
    const accepted = [...unary, ...overSession].filter((r) => r.status === "fulfilled").length;
    // One budget for the user: a burst of 20, then 20 a second for as long as
    // the 80 calls took. Two budgets would have let at least 40 through.
    expect(accepted).toBeGreaterThanOrEqual(20);
    expect(accepted).toBeLessThanOrEqual(Math.min(79, 20 + Math.ceil(20 * seconds)));
    for (const side of [unary, overSession]) {
      const refused = side.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(await codeOf(Promise.reject(refused.reason))).toBe("ResourceExhausted");
    }
    session.disconnect();
  });
});

for (const engine of await testEngines("access")) {
  describe(`bounds before the engine (${engine.name})`, () => {
    const server = serverForSuite({ ...engine.env(), CHORUS_MAX_HISTORY_PAGE_BYTES: String(256 * 1024) });
    const backend = () => createClient(ServerService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));

    it("refuses user ids past their bound with INVALID_ARGUMENT, and keeps working", async () => {
      const long = "u".repeat(5000);
      expect(await codeOf(backend().sendToUser({ userId: long, event: "m", data: "1" }))).toBe("InvalidArgument");
      expect(await codeOf(backend().emit({ topic: "chat/x", event: "m", data: "1", userId: long }))).toBe("InvalidArgument");
      expect(await codeOf(backend().emit({ topic: "chat/x", event: "m", data: "1", id: "i".repeat(200) }))).toBe("InvalidArgument");
      const client = new NodeClient({ url: server.url });
      await client.channel("chat/x").subscribe().ready();
      expect((await backend().emit({ topic: "chat/x", event: "m", data: "1", persist: true })).position?.seq).toBe(1n);
      client.disconnect();
    });

    it("bounds a history page in bytes and pages the rest", { timeout: 30_000 }, async () => {
      const blob = "x".repeat(60_000);
      for (let i = 0; i < 10; i++) await backend().emit({ topic: "chat/big", event: "m", data: JSON.stringify({ i, blob }), persist: true });
      const client = createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
      const seen: number[] = [];
      let beforeSeq = 0n;
      for (let page = 0; page < 10; page++) {
        const got = await client.getHistory({ topic: "chat/big", limit: 10, beforeSeq });
        const bytes = got.messages.reduce((n, m) => n + m.data.length, 0);
        expect(bytes).toBeLessThanOrEqual(256 * 1024);
        seen.push(...got.messages.map((m) => Number(m.seq)));
        if (!got.hasMore) break;
        beforeSeq = got.messages.at(-1)!.seq;
      }
      expect(seen).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    });
  });
}

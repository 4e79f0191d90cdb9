// Server-Sent Events for consumers without an SDK: `GET /sse?topics=…`
// streams payloads as events that curl and a browser's EventSource read,
// resumes from `Last-Event-ID` without loss or duplicate, keeps itself alive
// with heartbeat comments (no ping needed), and refuses what is wrong with
// an HTTP status and Connect's JSON error before any event.
import { spawn } from "node:child_process";
import * as net from "node:net";
import type { Browser } from "playwright-core";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { chromiumAvailable, launchChromium } from "../helpers/chromium.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { eventually, health, serverForSuite, sleep } from "../helpers/server.js";
import { SseReader } from "../helpers/sse.js";

const SECRET = "sse-test-secret-long-enough-for-hs256";
const HEARTBEAT_MS = 300;
const token = (sub: string) => new SignJWT({}).setSubject(sub).setExpirationTime("1h").setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));
const ENV = {
  CHORUS_JWT_SECRET: SECRET,
  CHORUS_API_KEYS: "sse-backend-key",
  CHORUS_HEARTBEAT_MS: String(HEARTBEAT_MS),
  CHORUS_SSE_RETRY_MS: "200",
  CHORUS_PERMISSIONS: JSON.stringify({ subscribe: ["chat/*", "news/*"], publish: ["chat/*"], history: ["chat/*", "news/*"] }),
};

interface Payload {
  type: string;
  topic: string;
  event: string;
  data: unknown;
  id: string;
  userId?: string;
  position?: { seq: number; epoch: string };
}

describe("Server-Sent Events", () => {
  const server = serverForSuite(ENV);
  const sdk = () => createServerSdk({ url: server.url, apiKey: "sse-backend-key" });
  const sse = async (query: string, headers: Record<string, string> = {}) => {
    const reader = new SseReader(`${server.url}/sse?${query}`, headers);
    await reader.opened;
    return reader;
  };

  it("streams a topic's payloads as events, with positions as ids, messages sent to the user, and heartbeats instead of pings", async () => {
    const reader = await sse("topics=chat/sse-a,news/sse-a", { authorization: `Bearer ${await token("ada")}` });
    expect(reader.status).toBe(200);
    expect(reader.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(reader.headers["cache-control"]).toContain("no-cache");
    await eventually(() => reader.named("system:subscribed").length === 1, "the subscribed event");
    expect(reader.retry).toBe(200);
    expect(reader.named("system:welcome")[0]).toMatchObject({ type: "system", data: { userId: "ada", heartbeatIntervalMs: HEARTBEAT_MS } });
    const [start] = reader.named<Payload & { data: { topics: Array<{ topic: string; position: { epoch: string; seq: number } }> } }>("system:subscribed");
    expect(start!.data.topics.map((t) => [t.topic, t.position.seq])).toEqual([
      ["chat/sse-a", 0],
      ["news/sse-a", 0],
    ]);

    const backend = sdk();
    await backend.socket.emit("message", { text: "persisted" }, "chat/sse-a", { persist: true });
    await backend.socket.emit("typing", { userId: "bob" }, "chat/sse-a");
    await backend.socket.emit("headline", { title: "news" }, "news/sse-a", { persist: true });
    await backend.sendTo("ada", "notice", { text: "for ada only" });
    await backend.sendTo("bob", "notice", { text: "for bob only" });
    await eventually(() => reader.events.length >= 6, "four events after the two of the start");

    const [persisted] = reader.named<Payload>("message");
    expect(persisted).toMatchObject({ type: "event", topic: "chat/sse-a", event: "message", data: { text: "persisted" }, position: { seq: 1 } });
    const epochA = persisted!.position!.epoch;
    const messageEvent = reader.events.find((e) => e.event === "message")!;
    // The id carries every topic's position, the event's own first: one Last-Event-ID resumes them all.
    expect(messageEvent.lastEventId).toBe(`chat/sse-a:${epochA}:1 news/sse-a:${start!.data.topics[1]!.position.epoch}:0`);
    // An ephemeral event changes no position.
    const typing = reader.events.find((e) => e.event === "typing")!;
    expect(JSON.parse(typing.data)).toMatchObject({ data: { userId: "bob" } });
    expect(typing.lastEventId).toBe(messageEvent.lastEventId);
    expect(reader.named<Payload>("notice").map((p) => p.data)).toEqual([{ text: "for ada only" }]);

    // Two heartbeat intervals and more without a word from the client: still open, kept alive by comments.
    const comments = reader.comments.filter((c) => c === "heartbeat").length;
    await sleep(HEARTBEAT_MS * 4);
    expect(reader.ended).toBe(false);
    expect(reader.comments.filter((c) => c === "heartbeat").length).toBeGreaterThanOrEqual(comments + 2);
    await backend.socket.emit("message", { text: "still here" }, "chat/sse-a", { persist: true });
    await eventually(() => reader.named("message").length === 2, "a message after the quiet");
    reader.close();
    backend.close();
  });

  it("resumes from Last-Event-ID: exactly what was missed on every topic, then live", async () => {
    const auth = { authorization: `Bearer ${await token("ada")}` };
    const backend = sdk();
    const first = await sse("topics=chat/sse-b,news/sse-b", auth);
    await eventually(() => first.named("system:subscribed").length === 1, "subscribed");
    for (let n = 1; n <= 3; n++) await backend.socket.emit("m", n, n === 2 ? "news/sse-b" : "chat/sse-b", { persist: true });
    await eventually(() => first.named("m").length === 3, "the first three");
    const resumeAt = first.events.at(-1)!.lastEventId;
    first.close();

    // Missed while away, on both topics.
    for (let n = 4; n <= 9; n++) await backend.socket.emit("m", n, n % 2 ? "chat/sse-b" : "news/sse-b", { persist: true });
    const second = await sse("topics=chat/sse-b,news/sse-b", { ...auth, "last-event-id": resumeAt });
    await eventually(() => second.named("m").length === 6, "the six missed");
    await backend.socket.emit("m", 10, "chat/sse-b", { persist: true });
    await eventually(() => second.named("m").length === 7, "and a live one");
    await sleep(100);
    const got = second.named<Payload>("m");
    expect(got).toHaveLength(7);
    // Per topic, in order, each once; nothing from before the id.
    expect(got.filter((p) => p.topic === "chat/sse-b").map((p) => p.data)).toEqual([5, 7, 9, 10]);
    expect(got.filter((p) => p.topic === "news/sse-b").map((p) => p.data)).toEqual([4, 6, 8]);
    const [subscribed] = second.named<{ data: { topics: Array<{ topic: string; recovered?: boolean }> } }>("system:subscribed");
    expect(subscribed!.data.topics.map((t) => [t.topic, t.recovered])).toEqual([
      ["chat/sse-b", true],
      ["news/sse-b", true],
    ]);
    second.close();
    backend.close();
  });

  it("works with curl -N, the token in the query", async () => {
    const curl = spawn("curl", ["-N", "-s", `${server.url}/sse?topics=chat/sse-curl&token=${await token("carl")}`]);
    let out = "";
    curl.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    try {
      await eventually(() => out.includes("event: system:subscribed"), "curl subscribed");
      const backend = sdk();
      await backend.socket.emit("message", { text: "hi curl" }, "chat/sse-curl", { persist: true });
      await eventually(() => out.includes('"hi curl"'), "the message in curl's output");
      backend.close();
      expect(out).toMatch(/\nid: chat\/sse-curl:[\w-]+:1\nevent: message\ndata: \{"type":"event","topic":"chat\/sse-curl","event":"message","data":\{"text":"hi curl"\}/);
    } finally {
      curl.kill();
    }
  });

  it("refuses with an HTTP status and Connect's JSON error before any event", async () => {
    const refused = async (query: string, headers: Record<string, string> = {}) => {
      const reader = await sse(query, headers);
      await eventually(() => reader.ended, "the refusal's end");
      return { status: reader.status, type: reader.headers["content-type"], error: JSON.parse(reader.body) as { code: string; message: string } };
    };
    const ada = { authorization: `Bearer ${await token("ada")}` };
    expect(await refused("topics=chat/x")).toMatchObject({ status: 401, type: "application/json", error: { code: "unauthenticated" } });
    expect(await refused("topics=chat/x", { authorization: "Bearer nonsense" })).toMatchObject({ status: 401 });
    expect(await refused("topics=secret/x", ada)).toMatchObject({ status: 403, error: { code: "permission_denied" } });
    expect(await refused("topics=chat//x", ada)).toMatchObject({ status: 400, error: { code: "invalid_argument" } });
    expect(await refused("topics=chat/x", { ...ada, "last-event-id": "not-an-id" })).toMatchObject({ status: 400, error: { code: "invalid_argument" } });
  });
});

describe("Server-Sent Events at the connection limit", () => {
  const server = serverForSuite({ CHORUS_MAX_CONNECTIONS: "1" });

  it("counts towards the node's connections: past the limit 429, and a freed place is taken again", async () => {
    const first = new SseReader(`${server.url}/sse?topics=chat/limit`);
    await first.opened;
    expect(first.status).toBe(200);
    const second = new SseReader(`${server.url}/sse?topics=chat/limit`);
    await second.opened;
    await eventually(() => second.ended, "the refusal");
    expect([second.status, JSON.parse(second.body).code]).toEqual([429, "resource_exhausted"]);
    first.close();
    let third: SseReader | undefined;
    for (let i = 0; i < 50 && third?.status !== 200; i++) {
      await sleep(100);
      third?.close();
      third = new SseReader(`${server.url}/sse?topics=chat/limit`);
      await third.opened;
    }
    expect(third!.status).toBe(200);
    third!.close();
  });
});

describe("Server-Sent Events to a reader that stops reading", () => {
  const server = serverForSuite({ CHORUS_MAX_QUEUED_BYTES: String(256 * 1024), CHORUS_HEARTBEAT_MS: "300" });

  it("is dropped after two heartbeat intervals without reading (messages for it dropped meanwhile, as for any slow subscriber), the node unharmed", async () => {
    const socket = net.connect(server.port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(`GET /sse?topics=chat/slow-sse HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n`);
    socket.pause(); // reads nothing from here on
    try {
      for (let i = 0; i < 50 && (await health(server.url)).sessions < 1; i++) await sleep(50);
      expect((await health(server.url)).sessions).toBe(1);
      const backend = createServerSdk({ url: server.url });
      const big = "x".repeat(32 * 1024);
      // Far more than the socket's buffers and the 256 KiB queue hold.
      for (let n = 0; n < 400 && (await health(server.url)).sessions > 0; n += 20) {
        await Promise.all(Array.from({ length: 20 }, (_, k) => backend.socket.emit("m", { n: n + k, big }, "chat/slow-sse")));
      }
      for (let i = 0; i < 100 && (await health(server.url)).sessions > 0; i++) await sleep(50);
      expect((await health(server.url)).sessions).toBe(0);
      // Others are served as before.
      const reader = new SseReader(`${server.url}/sse?topics=chat/slow-sse`);
      await eventually(() => reader.named("system:subscribed").length === 1, "a new stream");
      await backend.socket.emit("m", { n: -1 }, "chat/slow-sse");
      await eventually(() => reader.named("m").length === 1, "its message");
      reader.close();
      backend.close();
    } finally {
      socket.destroy();
    }
  });
});

describe("Server-Sent Events to a reader that falls behind and catches up", () => {
  const server = serverForSuite({ CHORUS_MAX_QUEUED_BYTES: String(256 * 1024), CHORUS_HEARTBEAT_MS: "5000" });

  it("gets system:lagged, the stream ends, and a reconnect with its last id recovers every message once", async () => {
    const topic = "chat/lagging-sse";
    const reader = new SseReader(`${server.url}/sse?topics=${topic}`);
    await eventually(() => reader.named("system:subscribed").length === 1, "subscribed");
    reader.pause();
    const backend = createServerSdk({ url: server.url });
    const big = "x".repeat(32 * 1024);
    for (let n = 0; n < 200; n += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, k) => backend.socket.emit("m", { n: n + k, big }, topic, { persist: true })));
    }
    reader.resume();
    await eventually(() => reader.ended, "the end of the lagging stream", 10_000);
    expect(reader.named("system:lagged")).toHaveLength(1);
    const seen = reader.named<{ data: { n: number } }>("m").map((p) => p.data.n);
    expect(seen.length).toBeLessThan(200); // some were dropped for it
    const again = new SseReader(`${server.url}/sse?topics=${topic}`, { "last-event-id": reader.lastId });
    await eventually(() => again.named("m").length === 200 - seen.length, "the rest", 10_000);
    await sleep(100);
    const rest = again.named<{ data: { n: number } }>("m").map((p) => p.data.n);
    expect([...seen, ...rest]).toEqual(Array.from({ length: 200 }, (_, n) => n));
    again.close();
    backend.close();
  });
});

describe.runIf(chromiumAvailable())("Server-Sent Events in Chromium's EventSource", () => {
  const server = serverForSuite({ CHORUS_SSE_RETRY_MS: "200" });
  let proxy: LoopbackProxy;
  let browser: Browser;
  beforeAll(async () => {
    proxy = await LoopbackProxy.start(server.port);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await proxy?.close();
  });

  it("receives events, and after a dropped connection reconnects by itself and resumes without loss or duplicate", async () => {
    const page = await browser.newPage();
    await page.goto(`${proxy.url}/healthz`);
    await page.evaluate(() => {
      const w = window as unknown as { got: number[]; opens: number };
      w.got = [];
      w.opens = 0;
      const source = new EventSource("/sse?topics=chat/browser-sse");
      source.addEventListener("system:subscribed", () => w.opens++);
      source.addEventListener("m", (e) => w.got.push(JSON.parse((e as MessageEvent).data).data));
    });
    const got = () => page.evaluate(() => (window as unknown as { got: number[] }).got);
    const opens = () => page.evaluate(() => (window as unknown as { opens: number }).opens);
    for (let i = 0; i < 100 && (await opens()) < 1; i++) await sleep(50);
    const backend = createServerSdk({ url: server.url });
    for (let n = 1; n <= 5; n++) await backend.socket.emit("m", n, "chat/browser-sse", { persist: true });
    for (let i = 0; i < 100 && (await got()).length < 5; i++) await sleep(50);

    proxy.dropAll();
    for (let n = 6; n <= 15; n++) await backend.socket.emit("m", n, "chat/browser-sse", { persist: true });
    for (let i = 0; i < 200 && (await opens()) < 2; i++) await sleep(50);
    expect(await opens()).toBe(2);
    await backend.socket.emit("m", 16, "chat/browser-sse", { persist: true });
    for (let i = 0; i < 100 && (await got()).length < 16; i++) await sleep(50);
    await sleep(200);
    expect(await got()).toEqual(Array.from({ length: 16 }, (_, k) => k + 1));
    backend.close();
    await page.close();
  });
});

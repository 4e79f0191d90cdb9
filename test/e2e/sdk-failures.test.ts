// The SDK never hides a failure and never crashes its host, on both
// transports: connect() rejects when its attempt fails (and retries in the
// background where that can help), every command has a deadline, oversized
// publishes are refused before anything is sent, a refused token changes
// nothing, and throwing listeners, unawaited promises and subscriptions
// without a callback all end up in onError.
import { execFile } from "node:child_process";
import { Code, ConnectError } from "@connectrpc/connect";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { SubscriptionRefusedError, TimeoutError } from "../../clients/src/errors.js";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { transports } from "../helpers/clients.js";
import { freePort } from "../helpers/nats.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { codeOf, eventually, removeDir, ROOT, serverForSuite, sleep, startServer } from "../helpers/server.js";

const server = serverForSuite({ CHORUS_MAX_PAYLOAD_BYTES: "10000" });

/** A client that records what it reports. */
function recorded(transport: (typeof transports)[number], options: Parameters<(typeof transports)[number]["create"]>[0]) {
  const errors: Array<{ code: string; context: string; message: string; error: unknown }> = [];
  const statuses: Array<[string, string | undefined]> = [];
  const client = transport.create({ ...options, onError: (e, context) => errors.push({ code: e.code.toString(), context, message: e.rawMessage, error: e }) });
  client.onStatusChange((status, error) => statuses.push([status, error?.rawMessage]));
  return { client, errors, statuses };
}

for (const transport of transports) {
  describe(`the SDK (${transport.name})`, () => {
    it("rejects connect() to a closed port, says so while retrying, and connects once the server is there", { timeout: 30_000 }, async () => {
      const port = await freePort();
      const { client, statuses } = recorded(transport, { url: `http://127.0.0.1:${port}` });
      expect(await codeOf(client.connect())).toBe("Unavailable");
      expect(client.status).toBe("reconnecting");
      expect(statuses.some(([s, e]) => s === "reconnecting" && e)).toBe(true);
      const late = await startServer({ PORT: String(port) });
      try {
        await eventually(() => client.status === "connected", "the client to connect by itself", 20_000);
      } finally {
        client.disconnect();
        await late.stop();
        removeDir(late.dataDir);
      }
    });

    it("rejects connect() to a wrong path, and to https on the cleartext port", { timeout: 30_000 }, async () => {
      const wrongPath = transport.create({ url: `${server.url}/not-chorus`, onError: () => {} });
      expect(await codeOf(wrongPath.connect())).not.toBe("OK");
      expect(wrongPath.status).toBe("disconnected");
      wrongPath.disconnect();
      const https = transport.create({ url: server.url.replace("http:", "https:"), onError: () => {} });
      expect(["Unavailable", "Internal", "Unknown"]).toContain(await codeOf(https.connect()));
      https.disconnect();
    });

    it("rejects connect() at a node's connection limit with RESOURCE_EXHAUSTED, and gets in once a place is free", { timeout: 40_000 }, async () => {
      const full = await startServer({ CHORUS_MAX_CONNECTIONS: "1" });
      const first = transport.create({ url: full.url });
      await first.connect();
      const { client } = recorded(transport, { url: full.url });
      try {
        expect(await codeOf(client.connect())).toBe("ResourceExhausted");
        expect(client.status).toBe("reconnecting");
        first.disconnect();
        await eventually(() => client.status === "connected", "the second client to get in", 30_000);
      } finally {
        client.disconnect();
        first.disconnect();
        await full.stop();
        removeDir(full.dataDir);
      }
    });

    it("refuses a publish larger than the server accepts before sending it, and keeps the session", async () => {
      const { client, errors } = recorded(transport, { url: server.url, token: "big" });
      const topic = `chat/oversized-${transport.name.length}`;
      await client.connect();
      expect(await codeOf(client.channel(topic).publish("m", "x".repeat(20_000), { persist: true }))).toBe("ResourceExhausted");
      expect(errors.map((e) => e.context)).toEqual([`publish to ${topic}`]);
      expect(await client.channel(topic).getHistory(10)).toEqual([]); // nothing reached the server
      await client.channel(topic).publish("m", "small", { persist: true });
      expect(client.status).toBe("connected");
      client.disconnect();
    });

    it("takes a command timeout longer than a timer can wait (weeks, or Infinity) as no deadline, not as an instant one", { timeout: 20_000 }, async () => {
      for (const commandTimeoutMs of [Infinity, 60 * 24 * 3600 * 1000]) {
        const { client, errors } = recorded(transport, { url: server.url, token: "patient", commandTimeoutMs });
        try {
          const topic = `chat/patient-${transport.name.length}`;
          // The first command waits for the session (connecting on demand), then for its answer: both without a timer that fires at once.
          await client.channel(topic).publish("m", 1, { persist: true });
          await client.channel(topic).publish("m", 2, { persist: true });
          expect((await client.channel(topic).getHistory(10)).length).toBeGreaterThanOrEqual(2);
          expect(errors).toEqual([]);
        } finally {
          client.disconnect();
        }
      }
    });

    it("gives every command a deadline: a frozen connection is noticed, replaced, and later commands work", { timeout: 45_000 }, async () => {
      const proxy = await LoopbackProxy.start(server.port);
      const { client, errors } = recorded(transport, { url: proxy.url, token: "frozen", commandTimeoutMs: 1500, connectTimeoutMs: 1500 });
      try {
        const topic = `chat/deadline-${transport.name.length}`;
        await client.channel(topic).publish("m", 0, { persist: true });
        const started = Date.now();
        // The server stops answering, without any connection closing (half-open).
        proxy.hold(true);
        proxy.freezeAll();
        const timedOut = await client.channel(topic).publish("m", 1, { persist: true, id: "d1" }).catch((e: unknown) => e);
        expect(timedOut).toBeInstanceOf(TimeoutError);
        expect(timedOut).toBeInstanceOf(ConnectError);
        expect((timedOut as ConnectError).code).toBe(Code.DeadlineExceeded);
        expect(Date.now() - started).toBeLessThan(3000);
        proxy.hold(false);
        // (A new Listen stream may also be handed a frozen pooled connection: the connect timeout lets it go.)
        await eventually(() => client.status === "connected", "a new session", 20_000);
        // A fresh connection serves the retry (stored once, thanks to its id). A fetch runtime may still hand
        // a retry a pooled connection frozen with the others: each deadline lets one go, so a few retries get through.
        for (let attempt = 1; ; attempt++) {
          try {
            await client.channel(topic).publish("m", 1, { persist: true, id: "d1" });
            break;
          } catch (error) {
            if (attempt === 4) throw error;
          }
        }
        expect((await client.channel(topic).getHistory(10)).map((m) => m.data)).toEqual([1, 0]);
        expect(errors.some((e) => e.code === "4")).toBe(true);
      } finally {
        client.disconnect();
        await proxy.close();
      }
    });

    it("reports a throwing listener through onError, and the other listeners still run", async () => {
      const { client, errors } = recorded(transport, { url: server.url, token: "listener" });
      const topic = `chat/throwing-${transport.name.length}`;
      const got: unknown[] = [];
      client
        .channel(topic)
        .on("m", () => {
          throw new Error("listener bug");
        })
        .on("m", ({ data }) => got.push(data))
        .subscribe();
      await client.channel(topic).ready();
      await client.channel(topic).publish("m", "hello");
      await eventually(() => got.length === 1 && errors.length === 1, "delivery and the report");
      expect(errors[0]).toMatchObject({ context: `listener for "m" on ${topic}`, message: "listener bug" });
      client.disconnect();
    });

    it("reports a refused subscribe without a callback", async () => {
      const { client, errors } = recorded(transport, { url: server.url, token: "subscriber" });
      client.channel("has space/x").subscribe();
      await eventually(() => errors.length === 1, "the refusal reported");
      expect(errors[0]!.context).toBe("subscribe to has space/x");
      expect(await codeOf(client.channel("has space/x").ready())).toBe("InvalidArgument");
      // The refusal's class names the condition and the topic; it is still the server's ConnectError, code and all.
      const refused = await client.channel("has space/x").ready().catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(SubscriptionRefusedError);
      expect(refused).toBeInstanceOf(ConnectError);
      expect(refused).not.toBeInstanceOf(TimeoutError);
      expect(refused).toMatchObject({ topic: "has space/x", code: Code.InvalidArgument });
      expect(errors[0]!.error).toBeInstanceOf(SubscriptionRefusedError);
      expect(client.channel("has space/x").state).toBe("errored");
      client.disconnect();
    });
  });
}

describe("tokens", () => {
  const SECRET = "sdk-failures-secret-long-enough-for-hs256";
  const jwtServer = serverForSuite({ CHORUS_JWT_SECRET: SECRET });
  const token = (sub: string) => new SignJWT({}).setSubject(sub).setExpirationTime("1h").setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));

  for (const transport of transports) {
    it(`a refused setToken() leaves the previous token in place, across reconnects (${transport.name})`, { timeout: 30_000 }, async () => {
      const proxy = await LoopbackProxy.start(jwtServer.port);
      const { client } = recorded(transport, { url: proxy.url, token: await token("ada") });
      try {
        await client.connect();
        expect(await codeOf(client.setToken(await token("mallory")))).toBe("PermissionDenied");
        proxy.dropAll();
        await eventually(() => client.status === "reconnecting", "the drop noticed", 10_000);
        await eventually(() => client.status === "connected", "the reconnect", 15_000);
        expect(client.userId).toBe("ada");
      } finally {
        client.disconnect();
        await proxy.close();
      }
    });

    it(`reports getToken failures and an unauthenticated connect, without retrying a refused token (${transport.name})`, { timeout: 20_000 }, async () => {
      const failing = recorded(transport, {
        url: jwtServer.url,
        getToken: () => {
          throw new Error("identity provider down");
        },
      });
      expect(await codeOf(failing.client.connect())).toBe("Unauthenticated");
      expect(failing.errors.some((e) => e.context === "getToken" && /identity provider down/.test(e.message))).toBe(true);
      failing.client.disconnect();
      const refused = recorded(transport, { url: jwtServer.url, token: "not-a-jwt" });
      expect(await codeOf(refused.client.connect())).toBe("Unauthenticated");
      await sleep(200);
      expect(refused.client.status).toBe("disconnected");
      refused.client.disconnect();
    });
  }
});

it("never crashes a Node process: unawaited refused publishes and emits, throwing listeners", { timeout: 30_000 }, async () => {
  // Run as a plain Node program, where an unhandled rejection or an uncaught exception ends the process.
  const program = `
    import { RealtimeClient as NodeClient } from "./clients/src/node.ts";
    import { RealtimeClient as BrowserClient } from "./clients/src/browser.ts";
    import { createServerSdk } from "./clients/src/server-sdk.ts";
    const clients = [new NodeClient({ url: ${JSON.stringify(server.url)}, token: "careless" }), new BrowserClient({ url: ${JSON.stringify(server.url)}, token: "careless" })];
    for (const [k, client] of clients.entries()) {
      client.channel("chat/careless" + k).on("m", () => { throw new Error("listener bug"); }).subscribe();
      await client.channel("chat/careless" + k).ready();
      client.channel("bad topic").publish("m", 1);          // refused, never awaited
      client.channel("chat/careless" + k).publish("m", 1);  // delivered to the throwing listener
      client.channel("chat/x").getHistory(5000);            // refused, never awaited
    }
    const sdk = createServerSdk({ url: ${JSON.stringify(server.url)} });
    sdk.socket.emit("m", 1, "also bad topic");              // refused, never awaited
    await new Promise((r) => setTimeout(r, 1500));
    for (const client of clients) client.disconnect();
    sdk.close();
    console.log("still alive");
  `;
  const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, ["--import", "tsx", "--input-type=module", "-e", program], { cwd: ROOT, timeout: 20_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    ),
  );
  expect(result.stdout).toContain("still alive");
  expect(result.code).toBe(0);
  expect(result.stderr).toMatch(/publish to bad topic/);
  expect(result.stderr).toMatch(/emit to also bad topic/);
  expect(result.stderr).toMatch(/listener for "m" on chat\/careless0: listener bug/);
  expect(result.stderr).toMatch(/listener for "m" on chat\/careless1: listener bug/);
  expect(result.stderr.match(/getHistory of chat\/x/g)).toHaveLength(2);
});

it("rejects an emit for callers who await it", async () => {
  const sdk = createServerSdk({ url: server.url, onError: () => {} });
  expect(await codeOf(sdk.socket.emit("m", 1, "bad topic"))).toBe("InvalidArgument");
  // The server's own notices: an SDK would act on a forged one (a system:lagged makes it resubscribe).
  expect(await codeOf(sdk.socket.emit("system:lagged", {}, "chat/x"))).toBe("InvalidArgument");
  expect(await codeOf(sdk.socket.emit("presence:join", {}, "chat/x"))).toBe("InvalidArgument");
  sdk.close();
});


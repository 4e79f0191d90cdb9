import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { RealtimeService } from "../../gen/chorus/v1/realtime_pb.js";
import { NodeClient, BrowserClient } from "../helpers/clients.js";
import { codeOf, eventually, removeDir, serverForSuite, sleep, startServer } from "../helpers/server.js";

describe("heartbeats", () => {
  const server = serverForSuite({ CHORUS_HEARTBEAT_MS: "200" });

  it("keep answering clients connected on both transports", async () => {
    const clients = [new NodeClient({ url: server.url }), new BrowserClient({ url: server.url })];
    const statuses: string[][] = clients.map(() => []);
    clients.forEach((c, i) => c.onStatusChange((s) => statuses[i]!.push(s)));
    await Promise.all(clients.map((c) => c.connect()));
    await sleep(1200); // six intervals
    expect(statuses).toEqual([["connecting", "connected"], ["connecting", "connected"]]);
    for (const c of clients) c.disconnect();
  });

  it("drop a session that stops answering within two intervals, with DEADLINE_EXCEEDED", async () => {
    const client = createClient(RealtimeService, createGrpcTransport({ baseUrl: server.url }));
    let release!: () => void;
    async function* silent() {
      await new Promise<void>((r) => (release = r)); // keeps the request side open, says nothing
    }
    const started = Date.now();
    const code = await codeOf(
      (async () => {
        for await (const _ of client.connect(silent()));
      })(),
    );
    release();
    expect(code).toBe("DeadlineExceeded");
    expect(Date.now() - started).toBeLessThan(200 * 4);
  });
});

describe("dead connections", () => {
  const server = serverForSuite({ CHORUS_HEARTBEAT_MS: "200", CHORUS_IDLE_TIMEOUT_MS: "1500" });

  it("closes the HTTP/2 connection of a session dropped for silence: its PING goes unanswered, or it idles out", { timeout: 20_000 }, async () => {
    const { RawConnection, closeRawConnections, FRAME } = await import("../helpers/h2-raw.js");
    const { encodeHeaders } = await import("../../server/src/transport/h2/hpack.js");
    try {
      // A peer that opens a session and then says nothing, and answers no PING (a raw connection never does).
      const c = await RawConnection.connect(server.port);
      c.send(FRAME.HEADERS, 4, 1, encodeHeaders([[":method", "POST"], [":scheme", "http"], [":authority", "x"], [":path", "/chorus.v1.RealtimeService/Connect"], ["content-type", "application/connect+proto"]]));
      const started = Date.now();
      // The session ends (DEADLINE_EXCEEDED), then the server probes the connection with a PING of its own.
      await c.next((f) => f.type === FRAME.PING && f.payload.toString() === "chorus:?", "the server's liveness PING", 5000);
      await eventually(() => c.closed, "the connection closed", 15_000);
      console.log(`a silent HTTP/2 peer: session dropped and connection closed ${Date.now() - started} ms after it went quiet (heartbeat 200 ms, idle timeout 1500 ms)`);
    } finally {
      closeRawConnections();
    }
  });
});

describe("shutdown", () => {
  it("tells clients to reconnect elsewhere on SIGTERM and exits 0", async () => {
    const server = await startServer();
    const client = new NodeClient({ url: server.url });
    const statuses: string[] = [];
    client.onStatusChange((s) => statuses.push(s));
    await client.connect();
    expect(await server.stop()).toBe(0);
    await eventually(() => statuses.includes("reconnecting"), "reconnecting after the goodbye");
    client.disconnect();
    expect(statuses).toEqual(["connecting", "connected", "reconnecting", "disconnected"]);
    removeDir(server.dataDir);
  });
});

describe("CORS", () => {
  const server = serverForSuite({ CHORUS_CORS_ORIGINS: "http://app.example" });
  const preflight = (origin: string) =>
    fetch(`${server.url}/chorus.v1.RealtimeService/Publish`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
    });

  it("answers preflights for configured origins, allowing the auth header", async () => {
    const res = await preflight("http://app.example");
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://app.example");
    expect(res.headers.get("access-control-allow-headers")).toMatch(/Authorization/);
  });

  it("refuses other origins", async () => {
    const res = await preflight("http://evil.example");
    expect(res.status).toBe(403);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});

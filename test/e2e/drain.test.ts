import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import type { RealtimePayload } from "../../clients/src/types.js";
import { transports, NodeClient } from "../helpers/clients.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { eventually, removeDir, startServer } from "../helpers/server.js";

const dataDir = mkdtempSync(join(tmpdir(), "chorus-drain-"));
afterAll(() => removeDir(dataDir));

it.each(transports)("on SIGTERM a node drains; its clients move to the next node and lose nothing persisted ($name)", async (transport) => {
  const a = await startServer({}, dataDir);
  const proxy = await LoopbackProxy.start(a.port);
  const topic = `chat/drain-${transport.name.split(" ")[0]}`;
  const client = transport.create({ url: proxy.url, token: "mover" });
  const got: RealtimePayload[] = [];
  const statuses: string[] = [];
  client.onStatusChange((s) => statuses.push(s));
  client.channel(topic).on("m", (p) => got.push(p)).subscribe();
  await client.channel(topic).ready();
  const publisherA = new NodeClient({ url: a.url, reconnect: false });
  for (let n = 0; n < 2; n++) await publisherA.channel(topic).publish("m", { n }, { persist: true });
  await eventually(() => got.length === 2, "the first two");
  publisherA.disconnect();

  const stopping = Date.now();
  expect(await a.stop()).toBe(0); // SIGTERM: tells clients to go, waits for them, exits
  expect(Date.now() - stopping).toBeLessThan(6000);
  await eventually(() => statuses.includes("reconnecting"), "the client told to reconnect");

  // The next node (same history) takes over behind the same address.
  const b = await startServer({}, dataDir);
  proxy.retarget(b.port);
  const publisherB = new NodeClient({ url: b.url });
  for (let n = 2; n < 22; n++) await publisherB.channel(topic).publish("m", { n }, { persist: true });
  await eventually(() => got.length >= 22, "everything persisted meanwhile", 15_000);
  expect(got.map((p) => p.data.n)).toEqual(Array.from({ length: 22 }, (_, n) => n));
  expect(client.status).toBe("connected");

  client.disconnect();
  publisherB.disconnect();
  await proxy.close();
  await b.stop();
});

it("tells open HTTP/2 connections to go away on SIGTERM, and lets them finish", async () => {
  const { RawConnection, closeRawConnections } = await import("../helpers/h2-raw.js");
  const own = await startServer();
  try {
    const c = await RawConnection.connect(own.port);
    c.request(1, "/healthz");
    await c.headers(1);
    const stopped = own.stop();
    expect(await c.goAway()).toEqual({ lastStream: 1, code: 0 });
    await eventually(() => c.closed, "the connection to close");
    await stopped;
  } finally {
    closeRawConnections();
    removeDir(own.dataDir);
  }
});

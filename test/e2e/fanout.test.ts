import { expect, it } from "vitest";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import type { RealtimePayload } from "../../clients/src/types.js";
import { BrowserClient, NodeClient } from "../helpers/clients.js";
import { eventually, serverForSuite } from "../helpers/server.js";

const server = serverForSuite({ CHORUS_MAX_PUBLISH_RATE: "0" }); // bursts; the rate limit has its own tests

it("two Node clients and a browser client on chat/general each get every message once, in each publisher's order", async () => {
  const topic = "chat/general";
  const clients = [
    new NodeClient({ url: server.url, token: "node-1" }),
    new NodeClient({ url: server.url, token: "node-2" }),
    new BrowserClient({ url: server.url, token: "browser-1" }),
  ];
  const sdk = createServerSdk({ url: server.url });
  const received = clients.map(() => [] as RealtimePayload[]);
  clients.forEach((c, i) => c.channel(topic).on("*", (p) => received[i]!.push(p)).subscribe());
  await Promise.all(clients.map((c) => c.channel(topic).ready()));

  const perPublisher = 150;
  // Everyone publishes at once, interleaved with back-end emits.
  await Promise.all([
    ...clients.map((c) =>
      Promise.all(Array.from({ length: perPublisher }, (_, n) => c.channel(topic).publish("message", { from: c.userId, n }, { persist: n % 3 === 0 }))),
    ),
    Promise.all(Array.from({ length: perPublisher }, (_, n) => sdk.socket.emit("chat:message", { from: "server", n }, topic, { persist: n % 2 === 0 }))),
  ]);

  const total = perPublisher * 4;
  await eventually(() => received.every((r) => r.length >= total), `${total} messages at every client`, 10_000);
  for (const list of received) {
    expect(list).toHaveLength(total);
    expect(new Set(list.map((p) => p.id)).size).toBe(total); // exactly once
    for (const from of ["node-1", "node-2", "browser-1", "server"]) {
      const ns = list.filter((p) => p.data.from === from).map((p) => p.data.n);
      expect(ns, `order of ${from}`).toEqual(Array.from({ length: perPublisher }, (_, n) => n));
    }
    const emitted = list.filter((p) => p.data.from === "server");
    expect(emitted.every((p) => p.event === "chat:message" && p.userId === undefined)).toBe(true);
    expect(list.filter((p) => p.data.from === "node-2").every((p) => p.userId === "node-2")).toBe(true);
  }
  // Persisted messages carry positions that increase in delivery order.
  const seqs = received[0]!.filter((p) => p.position).map((p) => p.position!.seq);
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  expect(new Set(seqs).size).toBe(seqs.length);

  for (const c of clients) c.disconnect();
  sdk.close();
});

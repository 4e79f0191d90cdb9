import { describe, expect, it } from "vitest";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import type { RealtimePayload } from "../../clients/src/types.js";
import { NodeClient, transports } from "../helpers/clients.js";
import { natsAvailable, natsNodesForSuite } from "../helpers/nats.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { eventually, sleep } from "../helpers/server.js";

const available = await natsAvailable();

/** Two Chorus nodes sharing one NATS (the machine's), with subjects and stream of their own. */
describe.skipIf(!available)("two Chorus nodes on one NATS act as one server", () => {
  const nodes = natsNodesForSuite("nodes", { CHORUS_MAX_PUBLISH_RATE: "0" });

  it("a client on A receives what a client on B publishes and what Emit sends to either node, in order", async () => {
    const topic = "chat/across";
    const onA = new NodeClient({ url: nodes.a.url, token: "ann" });
    const onB = new NodeClient({ url: nodes.b.url, token: "ben" });
    const got: RealtimePayload[] = [];
    onA.channel(topic).on("*", (p) => got.push(p)).subscribe();
    await onA.channel(topic).ready();
    const sdkA = createServerSdk({ url: nodes.a.url });
    const sdkB = createServerSdk({ url: nodes.b.url });

    await onB.channel(topic).publish("message", { n: 0 }, { persist: true });
    await onB.channel(topic).publish("typing", { n: 1 }); // ephemeral
    await sdkA.socket.emit("order:shipped", { n: 2 }, topic, { persist: true });
    await sdkB.socket.emit("order:shipped", { n: 3 }, topic, { persist: true });
    await eventually(() => got.length === 4, "four messages on A");
    expect(got.map((p) => [p.event, p.data.n])).toEqual([
      ["message", 0],
      ["typing", 1],
      ["order:shipped", 2],
      ["order:shipped", 3],
    ]);
    // Positions are the topic's own, contiguous whichever node stored the message.
    expect(got.filter((p) => p.position).map((p) => p.position!.seq)).toEqual([1, 2, 3]);
    expect(got[0]).toMatchObject({ userId: "ben", connectionId: onB.connectionId });

    // History is one: the same pages from both nodes.
    const fromA = await onA.channel(topic).getHistory(10);
    const fromB = await onB.channel(topic).getHistory(10);
    expect(fromA.map((m) => m.data.n)).toEqual([3, 2, 0]);
    expect(fromB).toEqual(fromA);

    onA.disconnect();
    onB.disconnect();
    sdkA.close();
    sdkB.close();
  });

  it("publishers on both nodes racing on one topic get contiguous, distinct positions, each in its own order", async () => {
    const topic = "chat/race";
    const onA = new NodeClient({ url: nodes.a.url, token: "ann" });
    const onB = new NodeClient({ url: nodes.b.url, token: "ben" });
    const send = (client: NodeClient, who: string) =>
      Promise.all(Array.from({ length: 200 }, (_, n) => client.channel(topic).publish("m", { who, n }, { persist: true })));
    const [fromA, fromB] = await Promise.all([send(onA, "a"), send(onB, "b")]);
    const seqs = [...fromA, ...fromB].map((r) => r.position!.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: 400 }, (_, k) => k + 1));
    // Each publisher's messages are stored in the order it sent them.
    for (const results of [fromA, fromB]) {
      const mine = results.map((r) => r.position!.seq);
      expect(mine).toEqual([...mine].sort((x, y) => x - y));
    }
    const history = await onA.channel(topic).getHistory(1000);
    expect(history).toHaveLength(400);
    expect(history.map((m) => m.seq)).toEqual(Array.from({ length: 400 }, (_, k) => 400 - k));
    onA.disconnect();
    onB.disconnect();
  });

  it("messages sent to a user reach the user's connections on every node", async () => {
    const onA = new NodeClient({ url: nodes.a.url, token: "cleo" });
    const onB = new NodeClient({ url: nodes.b.url, token: "cleo" });
    const got: string[] = [];
    onA.on("notice", ({ data }) => got.push(`A:${data}`));
    onB.on("notice", ({ data }) => got.push(`B:${data}`));
    await Promise.all([onA.connect(), onB.connect()]);
    const sdk = createServerSdk({ url: nodes.b.url });
    await sdk.sendTo("cleo", "notice", "hello");
    await eventually(() => got.length === 2, "both connections");
    expect(got.sort()).toEqual(["A:hello", "B:hello"]);
    onA.disconnect();
    onB.disconnect();
    sdk.close();
  });

  it("a retried publish with the same id is stored once, whichever node gets the retry", async () => {
    const topic = "chat/retry";
    const sdkA = createServerSdk({ url: nodes.a.url });
    const sdkB = createServerSdk({ url: nodes.b.url });
    const first = await sdkA.socket.emit("m", { once: true }, topic, { persist: true, id: "order-77" });
    const again = await sdkB.socket.emit("m", { once: true }, topic, { persist: true, id: "order-77" });
    expect(again.id).toBe("order-77");
    expect(again.position).toEqual(first.position);
    const client = new NodeClient({ url: nodes.a.url });
    expect((await client.channel(topic).getHistory()).length).toBe(1);
    client.disconnect();
    sdkA.close();
    sdkB.close();
  });

  it.each(transports)("a subscriber cut off from A while 500 messages are persisted reconnects to B and receives exactly those 500, in order, then live ones ($name)", async (transport) => {
    const topic = `chat/move-${transport.name.split(" ")[0]}`;
    const proxy = await LoopbackProxy.start(nodes.a.port);
    const client = transport.create({ url: proxy.url, token: "mover" });
    const got: number[] = [];
    client.channel(topic).on("m", ({ data }) => got.push(data)).subscribe();
    await client.channel(topic).ready();
    const publisher = new NodeClient({ url: nodes.b.url });
    for (let n = 0; n < 5; n++) await publisher.channel(topic).publish("m", n, { persist: true });
    await eventually(() => got.length === 5, "the first five");

    proxy.retarget(nodes.b.port);
    proxy.dropAll();
    await eventually(() => client.status === "reconnecting", "reconnecting");
    await Promise.all(Array.from({ length: 500 }, (_, i) => publisher.channel(topic).publish("m", 5 + i, { persist: true })));
    await eventually(() => client.status === "connected", "connected to B", 10_000);
    for (let n = 505; n < 510; n++) await publisher.channel(topic).publish("m", n, { persist: true });
    await eventually(() => got.length >= 510, "all 510", 15_000);
    await sleep(200);
    expect(got).toEqual(Array.from({ length: 510 }, (_, n) => n));
    client.disconnect();
    publisher.disconnect();
    await proxy.close();
  });
});

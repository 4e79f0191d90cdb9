import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { RealtimeService } from "../../gen/chorus/v1/realtime_pb.js";
import { HistoryGapError } from "../../clients/src/errors.js";
import type { RealtimePayload } from "../../clients/src/types.js";
import { NodeClient } from "../helpers/clients.js";
import { testEngines } from "../helpers/nats.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { eventually, serverForSuite, sleep } from "../helpers/server.js";

const engines = await testEngines("positions");

describe.each(engines)("positions and recovery on the $name engine", (engine) => {
  const server = serverForSuite({ ...engine.env(), CHORUS_MAX_PUBLISH_RATE: "0", CHORUS_RETENTION: "**=count:10" });
  let proxy: LoopbackProxy;
  beforeAll(async () => {
    proxy = await LoopbackProxy.start(server.port);
  });
  afterAll(() => proxy.close());

  it("gives every persisted message of a topic the next position, whoever publishes", async () => {
    const a = new NodeClient({ url: server.url });
    const b = new NodeClient({ url: server.url });
    const topic = "chat/positions";
    const sent = [];
    for (let n = 0; n < 6; n++) sent.push(await (n % 2 ? a : b).channel(topic).publish("m", n, { persist: true }));
    expect(sent.map((r) => r.position!.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(sent.map((r) => r.position!.epoch)).size).toBe(1);
    // Ephemeral messages take no position.
    expect((await a.channel(topic).publish("typing", true)).position).toBeUndefined();
    a.disconnect();
    b.disconnect();
  });

  it("pages history back by position as well as by time, with the topic's position and hasMore", async () => {
    const topic = "chat/paging";
    const publisher = new NodeClient({ url: server.url });
    for (let n = 0; n < 8; n++) await publisher.channel(topic).publish("m", n, { persist: true });
    publisher.disconnect();
    // Retention keeps the newest 10 of a topic; these 8 are all there.
    const rpc = createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const page = await rpc.getHistory({ topic, limit: 3, beforeSeq: 6n });
    expect(page.messages.map((m) => Number(m.seq))).toEqual([5, 4, 3]);
    expect(page.hasMore).toBe(true);
    expect(page.position?.seq).toBe(8n);
    const rest = await rpc.getHistory({ topic, limit: 3, beforeSeq: 3n });
    expect(rest.messages.map((m) => JSON.parse(m.data))).toEqual([1, 0]);
    expect(rest.hasMore).toBe(false);
    const byTime = await rpc.getHistory({ topic, limit: 2, before: page.messages[0]!.createdAt });
    expect(byTime.messages.map((m) => Number(m.seq))).toEqual([4, 3]);
  });

  it("tells a client whose gap reaches past retained history, then delivers what is still there and continues live", async () => {
    const topic = "chat/too-far";
    const errors: unknown[] = [];
    const client = new NodeClient({ url: proxy.url, onError: (error) => errors.push(error) });
    const publisher = new NodeClient({ url: server.url });
    const got: RealtimePayload[] = [];
    client.channel(topic).on("*", (p) => got.push(p)).subscribe();
    await client.channel(topic).ready();
    for (let n = 0; n < 3; n++) await publisher.channel(topic).publish("m", n, { persist: true });
    await eventually(() => got.length === 3, "the first three");

    proxy.dropAll();
    await eventually(() => client.status === "reconnecting", "reconnecting");
    // 25 more while away; only the newest 10 are retained (positions 19 to 28).
    for (let n = 3; n < 28; n++) await publisher.channel(topic).publish("m", n, { persist: true });
    await eventually(() => client.status === "connected" && client.channel(topic).subscribed, "subscribed again", 10_000);
    await publisher.channel(topic).publish("m", 28, { persist: true });
    await eventually(() => got.length >= 3 + 1 + 11, "the notice, the retained ten and one live", 10_000);
    await sleep(100);

    const notice = got[3]!;
    expect(notice).toMatchObject({ type: "system", event: "system:history_gap", data: { reason: "older_than_retained", missed_from: 4, missed_to: 18 } });
    expect(got.slice(4).map((p) => p.data)).toEqual(Array.from({ length: 11 }, (_, k) => 18 + k));
    expect(got.slice(4).map((p) => p.position!.seq)).toEqual(Array.from({ length: 11 }, (_, k) => 19 + k));
    // The app hears of the loss as an error of its own class, with what was lost.
    const gaps = errors.filter((e) => e instanceof HistoryGapError);
    expect(gaps).toHaveLength(1);
    expect(gaps[0]).toMatchObject({ topic, reason: "older_than_retained", missedFrom: 4, missedTo: 18, code: Code.DataLoss });
    client.disconnect();
    publisher.disconnect();
  });
});

// Back ends emitting many events: EmitMany (sdk.socket.emitMany) and the
// SDK's batching of the emits made within one turn. Each event is taken
// as Emit would take it, in order, and answered on its own.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { expect, it } from "vitest";
import { ServerService } from "../../gen/chorus/v1/server_pb.js";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { NodeClient } from "../helpers/clients.js";
import { codeOf, eventually, serverForSuite } from "../helpers/server.js";

const server = serverForSuite({ CHORUS_API_KEYS: "batch-key", CHORUS_MAX_EMIT_RATE: "0", CHORUS_MAX_EMIT_BATCH: "100" });

it("emits made in a loop without awaiting arrive once each, in order; a bad one fails alone", async () => {
  const topic = "feed/loop";
  const viewer = new NodeClient({ url: server.url, token: "viewer" });
  const got: number[] = [];
  viewer.channel(topic).on("m", ({ data }) => got.push(data.n)).subscribe();
  await viewer.channel(topic).ready();
  const sdk = createServerSdk({ url: server.url, apiKey: "batch-key", onError: () => {} });
  const total = 3000;
  const results = await Promise.allSettled(Array.from({ length: total }, (_, n) => (n === 1234 ? sdk.socket.emit("m", { n }, "bad topic") : sdk.socket.emit("m", { n }, topic, { persist: n % 2 === 0 }))));
  expect(results.filter((r) => r.status === "rejected")).toHaveLength(1);
  expect(await codeOf(results[1234]!.status === "rejected" ? Promise.reject(results[1234]!.reason) : Promise.resolve())).toBe("InvalidArgument");
  const persisted = results.flatMap((r, n) => (r.status === "fulfilled" && n % 2 === 0 ? [r.value.position!.seq] : []));
  expect(persisted).toEqual([...persisted].sort((a, b) => a - b)); // stored in call order
  await eventually(() => got.length === total - 1, "every good emit at the viewer", 10_000);
  expect(got).toEqual(Array.from({ length: total }, (_, n) => n).filter((n) => n !== 1234));
  viewer.disconnect();
  sdk.close();
});

it("emitMany: each event settles on its own, in order; more than a call may carry are sent in several; a key is needed", async () => {
  const sdk = createServerSdk({ url: server.url, apiKey: "batch-key", onError: () => {} });
  const settled = await sdk.socket.emitMany([
    { event: "m", data: 1, topic: "feed/many", persist: true },
    { event: "", data: 2, topic: "feed/many" },
    { event: "system:lagged", data: 3, topic: "feed/many" },
    { event: "m", data: 4, topic: "feed/many", persist: true, id: "same-id" },
    { event: "m", data: 4, topic: "feed/many", persist: true, id: "same-id" },
  ]);
  expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled", "fulfilled"]);
  const [first, , , once, again] = settled as Array<PromiseFulfilledResult<{ id: string; position?: { seq: number } }>>;
  expect(once!.value.position!.seq).toBe(first!.value.position!.seq + 1);
  expect(again!.value).toEqual(once!.value); // a retried id is stored once
  // 1200 events: sent 100 a call (what every server takes), all stored in order.
  const many = await sdk.socket.emitMany(Array.from({ length: 1200 }, (_, n) => ({ event: "m", data: n, topic: "feed/big", persist: true })));
  expect(many.every((s) => s.status === "fulfilled")).toBe(true);
  const viewer = new NodeClient({ url: server.url, token: "reader" });
  const history = await viewer.channel("feed/big").getHistory(1);
  expect(history[0]).toMatchObject({ data: 1199, seq: 1200 });
  const seqs = many.map((s) => (s as PromiseFulfilledResult<{ position?: { seq: number } }>).value.position!.seq);
  expect(seqs).toEqual(Array.from({ length: 1200 }, (_, n) => n + 1)); // in the order given, across calls
  viewer.disconnect();
  const anonymous = createServerSdk({ url: server.url, onError: () => {} });
  const refused = await anonymous.socket.emitMany([{ event: "m", data: 1, topic: "feed/x" }]);
  expect(refused[0]!.status).toBe("rejected");
  expect(await codeOf(Promise.reject((refused[0] as PromiseRejectedResult).reason))).toBe("Unauthenticated");
  anonymous.close();
  sdk.close();
});

it("refuses a call carrying more events than CHORUS_MAX_EMIT_BATCH with RESOURCE_EXHAUSTED, storing none of them", async () => {
  const client = createClient(ServerService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  const headers = { authorization: "Bearer batch-key" };
  const events = Array.from({ length: 101 }, (_, n) => ({ topic: "feed/over", event: "m", data: String(n), persist: true }));
  expect(await codeOf(client.emitMany({ events }, { headers }))).toBe("ResourceExhausted");
  const viewer = new NodeClient({ url: server.url, token: "reader" });
  expect(await viewer.channel("feed/over").getHistory(5)).toEqual([]);
  viewer.disconnect();
});

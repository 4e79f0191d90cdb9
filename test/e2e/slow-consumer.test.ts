import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as http2 from "node:http2";
import { expect, it } from "vitest";
import { ConnectRequestSchema, ConnectResponseSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { PayloadType } from "../../gen/chorus/v1/payload_pb.js";
import { NodeClient } from "../helpers/clients.js";
import { eventually, serverForSuite } from "../helpers/server.js";

// 256 frames of 1 KB: a few milliseconds at the rate the publisher below reaches, so a subscriber that stops
// reading is cut off at once, and one that reads (in this same busy process, through its GC pauses) is not.
const server = serverForSuite({ CHORUS_MAX_QUEUED_FRAMES: "256", CHORUS_MAX_PUBLISH_RATE: "0" });

/** A subscriber that speaks the bidi session by hand, so the test decides when it reads. */
async function rawSubscriber(topic: string) {
  const session = http2.connect(server.url);
  const stream = session.request({ ":method": "POST", ":path": "/chorus.v1.RealtimeService/Connect", "content-type": "application/connect+proto" });
  const request = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId: 1n, command: { case: "subscribe", value: { topic } } }));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(request.length, 1);
  stream.write(Buffer.concat([head, request]));
  const frames: ReturnType<typeof fromBinary<typeof ConnectResponseSchema>>["frames"] = [];
  let pending: Buffer = Buffer.alloc(0);
  stream.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      const length = pending.readUInt32BE(1);
      if (pending[0] === 0) frames.push(...fromBinary(ConnectResponseSchema, pending.subarray(5, 5 + length)).frames);
      pending = pending.subarray(5 + length);
    }
  });
  await eventually(() => frames.some((f) => f.kind.case === "reply"), "the subscribe reply");
  return { stream, frames, close: () => session.destroy() };
}

it("cuts a subscriber that stops reading off the hot path, keeps others at speed, and tells it how much it lost", async () => {
  const topic = "chat/slow";
  const slow = await rawSubscriber(topic);
  const fast = new NodeClient({ url: server.url, token: "fast" });
  let fastCount = 0;
  fast.channel(topic).on("m", () => fastCount++).subscribe();
  await fast.channel(topic).ready();

  slow.stream.pause(); // stops reading: HTTP/2 flow control soon stops the server's writes to it
  const publisher = new NodeClient({ url: server.url, token: "pub" });
  const total = 3000;
  const blob = "x".repeat(1000);
  const started = Date.now();
  // 32 publishes in flight, as a publisher waiting for its acknowledgements keeps them (this process is also the
  // fast subscriber: thousands encoded at once would keep it from reading, and make it a slow one).
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < total) await publisher.channel(topic).publish("m", { n: next++, blob });
    }),
  );
  await eventually(() => fastCount === total, "every message at the fast subscriber", 10_000);
  const fastMs = Date.now() - started;

  slow.stream.resume();
  const notice = () =>
    slow.frames.find((f) => f.kind.case === "payload" && f.kind.value.type === PayloadType.SYSTEM && f.kind.value.event === "system:lagged");
  await eventually(() => notice() !== undefined, "the lagged notice", 10_000);
  const payload = notice()!.kind.value as { topic: string; data: string };
  const dropped = JSON.parse(payload.data).dropped as number;
  const delivered = slow.frames.filter((f) => f.kind.case === "payload" && f.kind.value.type === PayloadType.EVENT).length;
  expect(payload.topic).toBe(topic);
  expect(dropped).toBeGreaterThan(0);
  // Nothing vanished silently: every message was either delivered or counted as dropped.
  expect(delivered + dropped).toBe(total);
  expect(fastMs).toBeLessThan(10_000);

  // After the notice, it is back on the hot path.
  await publisher.channel(topic).publish("m", { n: "after" });
  await eventually(() => slow.frames.some((f) => f.kind.case === "payload" && f.kind.value.data.includes('"after"')), "live delivery after catching up");
  slow.close();
  fast.disconnect();
  publisher.disconnect();
});

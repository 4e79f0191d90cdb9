import { create } from "@bufbuild/protobuf";
import { expect, it } from "vitest";
import { PayloadType, RealtimePayloadSchema } from "../../gen/chorus/v1/payload_pb.js";
import { encodeFrame, frameOf } from "../../server/src/frames.js";
import { FlushScheduler, Outbox } from "../../server/src/outbox.js";

const payload = (topic: string, n: number) =>
  encodeFrame(frameOf({ kind: { case: "payload", value: create(RealtimePayloadSchema, { type: PayloadType.EVENT, topic, event: "m", data: String(n) }) } }), true, topic);
const control = () => encodeFrame(frameOf({ kind: { case: "heartbeat", value: {} } }));
const never = new AbortController().signal;

it("hands a writer everything queued during one turn as one batch", async () => {
  const outbox = new Outbox({ maxFrames: 100, maxBytes: 1 << 20 }, new FlushScheduler());
  const batch = outbox.next(never);
  for (let n = 0; n < 5; n++) outbox.push(payload("chat/a", n));
  expect((await batch)!.map((f) => f.frame.kind.value && (f.frame.kind.value as { data: string }).data)).toEqual(["0", "1", "2", "3", "4"]);
});

it("cuts a lagging subscriber off, keeps control frames, then tells it which topics it lost", async () => {
  const outbox = new Outbox({ maxFrames: 4, maxBytes: 1 << 20 }, new FlushScheduler());
  outbox.push(control());
  for (let n = 0; n < 3; n++) outbox.push(payload("chat/a", n));
  // Full: the next payload sheds every queued payload and starts the cut-off.
  outbox.push(payload("chat/b", 3));
  outbox.push(payload("chat/a", 4));
  expect(outbox.lagging).toBe(true);
  outbox.push(control()); // never dropped
  const batch = (await outbox.next(never))!;
  const kinds = batch.map((f) => f.frame.kind.case);
  expect(kinds).toEqual(["heartbeat", "heartbeat", "payload", "payload"]);
  const notices = batch.slice(2).map((f) => f.frame.kind.value as { type: PayloadType; topic: string; event: string; data: string });
  expect(notices.map((n) => [n.type, n.topic, n.event, JSON.parse(n.data).dropped])).toEqual([
    [PayloadType.SYSTEM, "chat/a", "system:lagged", 4],
    [PayloadType.SYSTEM, "chat/b", "system:lagged", 1],
  ]);
  // Caught up: payloads flow again.
  expect(outbox.lagging).toBe(false);
  outbox.push(payload("chat/a", 5));
  expect((await outbox.next(never))!).toHaveLength(1);
});

it("ends after the queued frames, with the error if there is one", async () => {
  const outbox = new Outbox({ maxFrames: 10, maxBytes: 1 << 20 }, new FlushScheduler());
  outbox.push(control());
  outbox.end(new (await import("@connectrpc/connect")).ConnectError("bye"));
  outbox.push(control()); // ignored after end
  expect(await outbox.next(never)).toHaveLength(1);
  await expect(outbox.next(never)).rejects.toThrow(/bye/);
});

it("stops waiting when the stream's signal aborts", async () => {
  const outbox = new Outbox({ maxFrames: 10, maxBytes: 1 << 20 }, new FlushScheduler());
  const abort = new AbortController();
  const waiting = outbox.next(abort.signal);
  abort.abort();
  expect(await waiting).toBeUndefined();
});

it("writes a frame queued for an outbox during the very flush that just wrote it, in the next flush", async () => {
  const scheduler = new FlushScheduler();
  const limits = { maxFrames: 100, maxBytes: 1 << 20 };
  const [a, b] = [new Outbox(limits, scheduler), new Outbox(limits, scheduler)];
  const written: string[] = [];
  const record = (batch: ReturnType<typeof payload>[]) => written.push(...batch.map((f) => (f.frame.kind.value as { data: string }).data));
  a.attach({ write: (batch) => (record(batch), true), end() {}, abort() {} });
  // b's write delivers to a, which this flush has already written.
  b.attach({ write: (batch) => (record(batch), a.push(payload("chat/a", 99)), true), end() {}, abort() {} });
  a.push(payload("chat/a", 1));
  b.push(payload("chat/b", 2));
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  await turn();
  await turn();
  expect(written).toEqual(["1", "2", "99"]);
});

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { expect, it } from "vitest";
import { RealtimePayloadSchema } from "../../gen/chorus/v1/payload_pb.js";
import { ConnectResponseSchema, ServerFrameSchema, type ServerFrame } from "../../gen/chorus/v1/realtime_pb.js";
import { toPayload } from "../../clients/src/convert.js";
import { decodeFrames, type InboundFrame } from "../../clients/src/frames.js";
import { payloadFrameField } from "../../server/src/payload-wire.js";

const STRINGS = ["", "a", "chat/general", "é", "日本語", "🎉 party", "\u0000", "\ud800 lone surrogate", "x".repeat(31), "y".repeat(32), "z".repeat(33), "w".repeat(20_000)];
const JSON_TEXTS = ["", "null", "1", "-2.5e3", '"é"', '{"a":[1,2,{"b":null}]}', JSON.stringify("🎉 ".repeat(40)), JSON.stringify({ text: "x".repeat(20_000) })];
const NUMBERS = [0n, 1n, 127n, 128n, 16_383n, 16_384n, 1_733_000_000_000n, 2n ** 53n - 1n];

/** What the client would make of `body` by protobuf-es alone: the reference the hand decoder must equal. */
function reference(body: Uint8Array): InboundFrame[] {
  return fromBinary(ConnectResponseSchema, body).frames.map((f: ServerFrame) => (f.kind.case === "payload" ? { kind: { case: "decodedPayload" as const, value: toPayload(f.kind.value) } } : f));
}

const field = (frame: ServerFrame) => new BinaryWriter().tag(1, 2).bytes(toBinary(ServerFrameSchema, frame)).finish();
const concat = (parts: Uint8Array[]) => Buffer.concat(parts.map((p) => Buffer.from(p)));

it("decodes every payload frame the server writes exactly as protobuf-es and the conversion would, with the other frames between them", () => {
  let seed = 11;
  const pick = <T>(list: readonly T[]): T => list[(seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % list.length]!;
  const others: ServerFrame[] = [
    create(ServerFrameSchema, { kind: { case: "heartbeat", value: {} } }),
    create(ServerFrameSchema, { kind: { case: "reply", value: { requestId: 7n, result: { case: "publish", value: { id: "m", timestamp: 5n } } } } }),
    create(ServerFrameSchema, { kind: { case: "welcome", value: { sessionId: "s", connectionId: "c", userId: "u", heartbeatIntervalMs: 30_000 } } }),
    create(ServerFrameSchema, { kind: { case: "disconnect", value: { code: 14, reason: "bye", reconnect: true } } }),
  ];
  for (let i = 0; i < 300; i++) {
    const parts: Uint8Array[] = [];
    for (let k = 0; k < 10; k++) {
      const payload = create(RealtimePayloadSchema, {
        type: pick([0, 1, 2, 3, 4, 5, 9]),
        topic: pick(STRINGS),
        operation: pick([0, 1, 2, 3, 7]),
        event: pick(STRINGS),
        data: pick(JSON_TEXTS),
        old: pick(JSON_TEXTS),
        userId: pick(STRINGS),
        timestamp: pick(NUMBERS),
        id: pick(STRINGS),
        seq: pick(NUMBERS),
        epoch: pick(STRINGS),
        connectionId: pick(STRINGS),
      });
      parts.push(Uint8Array.of(0x0a), payloadFrameField(payload)!); // the server's own writer (it adds the field's tag as it batches)
      if (k % 4 === 3) parts.push(field(pick(others)));
    }
    const body = concat(parts);
    expect(decodeFrames(body)).toEqual(reference(body));
  }
});

it("skips fields it does not know inside a payload (a newer server), and leaves unusual frames to protobuf-es", () => {
  const payload = toBinary(RealtimePayloadSchema, create(RealtimePayloadSchema, { topic: "chat/x", event: "m", data: "1", timestamp: 9n, seq: 3n, epoch: "e" }));
  const withUnknown = concat([payload, new BinaryWriter().tag(99, 0).uint32(5).tag(98, 2).string("later").tag(97, 1).fixed64(1n).tag(96, 5).fixed32(2).finish()]);
  const frame = new BinaryWriter().tag(2, 2).bytes(withUnknown).finish();
  const body = new BinaryWriter().tag(1, 2).bytes(frame).finish();
  const [decoded] = decodeFrames(body);
  expect(decoded).toEqual({ kind: { case: "decodedPayload", value: { type: "event", topic: "chat/x", event: "m", data: 1, timestamp: 9, id: "", position: { seq: 3, epoch: "e" } } } });

  // A frame with a payload and then a heartbeat (the oneof's last wins) is protobuf-es's to read.
  const twoFields = concat([new BinaryWriter().tag(2, 2).bytes(payload).finish(), new BinaryWriter().tag(4, 2).bytes(new Uint8Array(0)).finish()]);
  const odd = new BinaryWriter().tag(1, 2).bytes(twoFields).finish();
  expect(decodeFrames(odd)).toEqual(reference(odd));
  expect(decodeFrames(odd)[0]!.kind.case).toBe("heartbeat");

  // An empty message has no frames.
  expect(decodeFrames(new Uint8Array(0))).toEqual([]);
});

it("refuses a cut message as protobuf-es does, rather than making something up", () => {
  const body = concat([Uint8Array.of(0x0a), payloadFrameField(create(RealtimePayloadSchema, { topic: "chat/x", event: "m", data: '{"a":1}', seq: 1n, epoch: "e" }))!]);
  for (let cut = 1; cut < body.length; cut++) {
    expect(() => decodeFrames(body.subarray(0, cut)), `cut at ${cut}`).toThrow();
    expect(() => fromBinary(ConnectResponseSchema, body.subarray(0, cut))).toThrow();
  }
});

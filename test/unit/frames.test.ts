import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { expect, it } from "vitest";
import { RealtimePayloadSchema } from "../../gen/chorus/v1/payload_pb.js";
import { ConnectResponseSchema, ServerFrameSchema, type ServerFrame } from "../../gen/chorus/v1/realtime_pb.js";
import { toPayload } from "../../clients/src/convert.js";
import { decodeFrames, type InboundFrame } from "../../clients/src/frames.js";
import { payloadFrameField } from "../../server/src/payload-wire.js";
import { samplePayloads } from "../helpers/wire-samples.js";

const JSON_TEXTS = ["", "null", "1", "-2.5e3", '"é"', '{"a":[1,2,{"b":null}]}', JSON.stringify("🎉 ".repeat(40)), JSON.stringify({ text: "x".repeat(20_000) })];

/** What the client would make of `body` by protobuf-es alone: the reference the hand decoder must equal. */
function reference(body: Uint8Array): InboundFrame[] {
  return fromBinary(ConnectResponseSchema, body).frames.map((f: ServerFrame) => (f.kind.case === "payload" ? { kind: { case: "decodedPayload" as const, value: toPayload(f.kind.value) } } : f));
}

const field = (frame: ServerFrame) => new BinaryWriter().tag(1, 2).bytes(toBinary(ServerFrameSchema, frame)).finish();
const concat = (parts: Uint8Array[]) => Buffer.concat(parts.map((p) => Buffer.from(p)));

it("decodes every payload frame the server writes exactly as protobuf-es and the conversion would, with the other frames between them", () => {
  const others: ServerFrame[] = [
    create(ServerFrameSchema, { kind: { case: "heartbeat", value: {} } }),
    create(ServerFrameSchema, { kind: { case: "reply", value: { requestId: 7n, result: { case: "publish", value: { id: "m", timestamp: 5n } } } } }),
    create(ServerFrameSchema, { kind: { case: "welcome", value: { sessionId: "s", connectionId: "c", userId: "u", heartbeatIntervalMs: 30_000 } } }),
    create(ServerFrameSchema, { kind: { case: "disconnect", value: { code: 14, reason: "bye", reconnect: true } } }),
  ];
  const payloads = samplePayloads(11, 3000, JSON_TEXTS);
  for (let i = 0; i < 300; i++) {
    const parts: Uint8Array[] = [];
    for (let k = 0; k < 10; k++) {
      const payload = payloads[i * 10 + k]!;
      parts.push(Uint8Array.of(0x0a), payloadFrameField(payload)!); // the server's own writer (it adds the field's tag as it batches)
      if (k % 4 === 3) parts.push(field(others[(i + k) % others.length]!));
    }
    const body = concat(parts);
    expect(decodeFrames(body)).toEqual(reference(body));
    // As a browser has the bytes (a plain Uint8Array): joined in a buffer reused from message to message, grown for the long texts.
    expect(decodeFrames(new Uint8Array(body))).toEqual(reference(body));
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

it("parses a message's data together only when each is a JSON text of its own: data that are not are refused as alone", () => {
  const body = (...data: string[]) =>
    concat(data.flatMap((d, i) => [Uint8Array.of(0x0a), payloadFrameField(create(RealtimePayloadSchema, { topic: "chat/x", event: "m", data: d, seq: BigInt(i + 1), epoch: "e" }))!]));
  // Joined, "1,2" and "3" would read as three values; "[1" and "2]" as one: neither may shift data between payloads.
  for (const data of [["1,2", "3"], ["[1", "2]"], ['{"a":1}', "not json"], ["1", "2", "3,"]]) {
    expect(() => decodeFrames(body(...data)), data.join(" | ")).toThrow(SyntaxError);
  }
  const fine = body('{"a":1}', "", "[1,2]", '"x"');
  expect(decodeFrames(fine).map((f) => (f.kind.value as { data: unknown }).data)).toEqual([{ a: 1 }, null, [1, 2], "x"]);
  // The same bytes outside a Node Buffer (as a browser has them) decode the same.
  expect(decodeFrames(new Uint8Array(fine))).toEqual(decodeFrames(fine));
});

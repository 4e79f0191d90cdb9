import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { expect, it } from "vitest";
import { RealtimePayloadSchema } from "../../gen/chorus/v1/payload_pb.js";
import { PublishResponseSchema, ReplySchema, ServerFrameSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { preEncodedFrame } from "../../server/src/frames.js";
import { errorReplyField, payloadFrameField, publishReplyField } from "../../server/src/payload-wire.js";
import { samplePayloads } from "../helpers/wire-samples.js";

/** What protobuf-es writes for the same frame: the reference the hand-written encoder must equal. */
const reference = (payload: ReturnType<typeof create<typeof RealtimePayloadSchema>>) =>
  new BinaryWriter().bytes(toBinary(ServerFrameSchema, create(ServerFrameSchema, { kind: { case: "payload", value: payload } }))).finish();

it("writes every payload frame byte for byte as protobuf-es does", () => {
  for (const payload of samplePayloads(7, 3000)) {
    expect(Buffer.from(payloadFrameField(payload)!).equals(Buffer.from(reference(payload)))).toBe(true);
  }
});

it("leaves what it does not handle to protobuf-es: negative or unsafe integers", () => {
  expect(payloadFrameField(create(RealtimePayloadSchema, { timestamp: -1n }))).toBeUndefined();
  expect(payloadFrameField(create(RealtimePayloadSchema, { seq: 2n ** 60n }))).toBeUndefined();
});

it("writes every publish reply byte for byte as protobuf-es does, and decodes back for the JSON clients", () => {
  const replies = [
    create(PublishResponseSchema, { id: "m-1", timestamp: 1_733_000_000_123n }),
    create(PublishResponseSchema, { id: "", timestamp: 0n }),
    create(PublishResponseSchema, { id: "é🎉", timestamp: 5n, position: { seq: 0n, epoch: "" } }),
    create(PublishResponseSchema, { id: "x".repeat(300), timestamp: 2n ** 53n - 1n, position: { seq: 123_456_789n, epoch: "ep-1" } }),
  ];
  for (const requestId of [0n, 1n, 127n, 128n, 300n, 2n ** 40n]) {
    for (const value of replies) {
      const frame = create(ServerFrameSchema, { kind: { case: "reply", value: create(ReplySchema, { requestId, result: { case: "publish", value } }) } });
      const expected = new BinaryWriter().bytes(toBinary(ServerFrameSchema, frame)).finish();
      const field = publishReplyField(requestId, value)!;
      expect(Buffer.from(field).equals(Buffer.from(expected))).toBe(true);
      expect(preEncodedFrame(field).frame).toEqual(frame);
    }
  }
  expect(publishReplyField(2n ** 60n, replies[0]!)).toBeUndefined();
});

it("writes every refusal byte for byte as protobuf-es does", () => {
  for (const requestId of [0n, 1n, 200n, 2n ** 40n]) {
    for (const [code, message] of [[8, 'publishing faster than 50 messages per second as user "ada"; slow down'], [3, ""], [0, "é🎉"], [16, "x".repeat(200)]] as const) {
      const frame = create(ServerFrameSchema, { kind: { case: "reply", value: create(ReplySchema, { requestId, result: { case: "error", value: { code, message } } }) } });
      const expected = new BinaryWriter().bytes(toBinary(ServerFrameSchema, frame)).finish();
      expect(Buffer.from(errorReplyField(requestId, code, message)!).equals(Buffer.from(expected))).toBe(true);
    }
  }
});

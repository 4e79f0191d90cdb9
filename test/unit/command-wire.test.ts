import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { expect, it } from "vitest";
import { ConnectRequestSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { publishCommandEnvelope } from "../../clients/src/command-wire.js";
import { envelope } from "../../clients/src/envelopes.js";
import type { CommandInit } from "../../clients/src/session.js";

/** What protobuf-es writes for the same command, enveloped: the reference the hand-written writer must equal. */
const reference = (requestId: bigint, publish: CommandInit<"publish">) => envelope(0, toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId, command: { case: "publish", value: publish } })));

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit));
const text = fc.oneof(
  fc.constant(""),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: fc.oneof(fc.string({ minLength: 1, maxLength: 1 }), loneSurrogate), maxLength: 20 }), // as JavaScript strings can be: both write U+FFFD
  fc.string({ minLength: 100, maxLength: 20_000 }),
);

it("writes every publish command byte for byte as protobuf-es does", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 2n ** 53n - 1n })),
      fc.record({ sessionId: fc.option(text, { nil: undefined }), topic: text, event: text, data: text, persist: fc.option(fc.boolean(), { nil: undefined }), id: fc.option(text, { nil: undefined }) }, { requiredKeys: ["topic", "event", "data"] }),
      (requestId, publish) => {
        const written = publishCommandEnvelope(requestId, publish)!;
        expect(written.equals(reference(requestId, publish))).toBe(true);
        // And the server reads back exactly what was meant.
        const back = fromBinary(ConnectRequestSchema, written.subarray(5));
        expect(back.requestId).toBe(requestId);
        expect(back.command.case).toBe("publish");
      },
    ),
    { numRuns: 3000 },
  );
});

it("leaves a request id past 2^53 to protobuf-es", () => {
  expect(publishCommandEnvelope(2n ** 53n, { topic: "a/b", event: "m", data: "1" })).toBeUndefined();
});

import { create } from "@bufbuild/protobuf";
import { RealtimePayloadSchema, type RealtimePayload } from "../../gen/chorus/v1/payload_pb.js";

/** Strings that stress a protobuf string field: empty, multi-byte, a lone surrogate, lengths around the varint and ASCII-path edges, large. */
export const WIRE_STRINGS = ["", "a", "chat/general", "é", "日本語", "🎉 party", "\u0000", "\ud800 lone surrogate", "x".repeat(31), "y".repeat(32), "z".repeat(33), "v".repeat(127), "u".repeat(128), "w".repeat(20_000)];
/** Integers around the varint byte boundaries, up to the largest a JS number holds exactly. */
export const WIRE_NUMBERS = [0n, 1n, 127n, 128n, 16_383n, 16_384n, 1_733_000_000_000n, 2n ** 53n - 1n];

/**
 * `count` payloads with every field drawn from the samples (a fixed seed: the
 * same payloads every run). `texts` fills data and old (JSON where the test
 * parses them); enum values include ones this version does not know.
 */
export function samplePayloads(seed: number, count: number, texts: readonly string[] = WIRE_STRINGS): RealtimePayload[] {
  const pick = <T>(list: readonly T[]): T => list[(seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % list.length]!;
  return Array.from({ length: count }, () =>
    create(RealtimePayloadSchema, {
      type: pick([0, 1, 2, 3, 4, 5, 9]),
      topic: pick(WIRE_STRINGS),
      operation: pick([0, 1, 2, 3, 7]),
      event: pick(WIRE_STRINGS),
      data: pick(texts),
      old: pick(texts),
      userId: pick(WIRE_STRINGS),
      timestamp: pick(WIRE_NUMBERS),
      id: pick(WIRE_STRINGS),
      seq: pick(WIRE_NUMBERS),
      epoch: pick(WIRE_STRINGS),
      connectionId: pick(WIRE_STRINGS),
    }),
  );
}

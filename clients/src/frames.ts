import { fromBinary } from "@bufbuild/protobuf";
import { ConnectResponseSchema, ServerFrameSchema, type ServerFrame } from "../../gen/chorus/v1/realtime_pb.js";
import { kindOf, operationOf, parseJson } from "./convert.js";
import type { RealtimePayload } from "./types.js";

/** A payload frame, decoded by hand straight into what listeners receive. */
export interface PayloadFrame {
  kind: { case: "decodedPayload"; value: RealtimePayload };
}

/** What a session yields: a payload ready for listeners, or any other server frame as protobuf-es decodes it. */
export type InboundFrame = ServerFrame | PayloadFrame;

/**
 * The frames of one server message (ConnectResponse and ListenResponse
 * share the layout: `repeated ServerFrame frames = 1`). Payload frames,
 * nearly everything a busy client receives, are read by hand from the
 * wire into the objects listeners get: protobuf-es's reflection-driven
 * decoding, then a conversion, cost several times more per payload (see
 * the decode section of `npm run bench`). Every other frame (welcome,
 * replies, heartbeats, disconnects), and anything unexpected in a payload
 * frame, goes to protobuf-es, so the result is always what it would say.
 */
export function decodeFrames(body: Uint8Array): InboundFrame[] {
  const frames: InboundFrame[] = [];
  const reader = new Reader(body);
  while (reader.more(body.length)) {
    if (reader.varint() !== FRAMES_TAG) return fromBinary(ConnectResponseSchema, body).frames; // not as the server writes it: the general decoder reads it all
    const length = reader.varint();
    const start = reader.at;
    const end = start + length;
    if (end > body.length) throw new RangeError("premature end of a server message");
    frames.push(payloadFrame(reader, end) ?? fromBinary(ServerFrameSchema, body.subarray(start, end)));
    reader.at = end;
  }
  return frames;
}

/** Field 1 of ConnectResponse / ListenResponse, length-delimited. */
const FRAMES_TAG = (1 << 3) | 2;
/** Field 2 of ServerFrame (the payload), length-delimited. */
const PAYLOAD_TAG = (2 << 3) | 2;

/** A frame holding exactly one payload field, decoded; undefined for any other frame (then protobuf-es reads it). */
function payloadFrame(reader: Reader, frameEnd: number): PayloadFrame | undefined {
  const from = reader.at;
  if (!reader.more(frameEnd) || reader.varint() !== PAYLOAD_TAG) return undefined;
  const length = reader.varint();
  const end = reader.at + length;
  if (end !== frameEnd) return (reader.at = from), undefined; // another field follows (or the length is off): the general decoder decides
  const value = payload(reader, end);
  if (!value) return (reader.at = from), undefined;
  return { kind: { case: "decodedPayload", value } };
}

/** RealtimePayload's fields, as in payload.proto; undefined when something is not as the server writes it. */
function payload(reader: Reader, end: number): RealtimePayload | undefined {
  let type = 0;
  let operation = 0;
  let topic = "";
  let event = "";
  let data = "";
  let old = "";
  let userId = "";
  let timestamp = 0;
  let id = "";
  let seq = 0;
  let epoch = "";
  let connectionId = "";
  while (reader.more(end)) {
    const tag = reader.varint();
    switch (tag) {
      case (1 << 3) | 0:
        type = reader.varint();
        break;
      case (2 << 3) | 2:
        topic = reader.string();
        break;
      case (3 << 3) | 0:
        operation = reader.varint();
        break;
      case (4 << 3) | 2:
        event = reader.string();
        break;
      case (5 << 3) | 2:
        data = reader.string();
        break;
      case (6 << 3) | 2:
        old = reader.string();
        break;
      case (7 << 3) | 2:
        userId = reader.string();
        break;
      case (8 << 3) | 0:
        timestamp = reader.varint();
        break;
      case (9 << 3) | 2:
        id = reader.string();
        break;
      case (10 << 3) | 0:
        seq = reader.varint();
        break;
      case (11 << 3) | 2:
        epoch = reader.string();
        break;
      case (12 << 3) | 2:
        connectionId = reader.string();
        break;
      default:
        // A field this client does not know (a newer server) or an unusual encoding: skipped, as protobuf does.
        if (!reader.skip(tag & 7)) return undefined;
    }
  }
  if (reader.at !== end || timestamp < 0 || seq < 0) return undefined;
  const value: RealtimePayload = { type: kindOf(type), topic, event, data: parseJson(data), timestamp, id };
  const op = operationOf(operation);
  if (op) value.operation = op;
  if (old !== "") value.old = parseJson(old);
  if (userId !== "") value.userId = userId;
  if (connectionId !== "") value.connectionId = connectionId;
  if (seq > 0) value.position = { seq, epoch };
  return value;
}

const utf8 = new TextDecoder();

/** A cursor over protobuf's wire format: varints (as numbers, exact up to 2^53), strings, skips. */
class Reader {
  at = 0;
  /** Node's Buffer#utf8Slice, when the bytes are a Buffer. */
  private readonly utf8Slice: ((this: Uint8Array, start: number, end: number) => string) | undefined;

  constructor(private readonly bytes: Uint8Array) {
    this.utf8Slice = (bytes as { utf8Slice?: (start: number, end: number) => string }).utf8Slice;
  }

  more(end: number): boolean {
    return this.at < end;
  }

  /** A varint as a number; 64-bit values past 2^53 lose precision (none the server writes comes near: times in ms, positions). */
  varint(): number {
    const bytes = this.bytes;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = bytes[this.at++];
      if (b === undefined) throw new RangeError("premature end of a varint");
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    throw new RangeError("a varint longer than 10 bytes");
  }

  string(): string {
    const length = this.varint();
    const start = this.at;
    const end = start + length;
    const bytes = this.bytes;
    if (end > bytes.length) throw new RangeError("premature end of a string");
    this.at = end;
    if (length === 0) return "";
    // Node's Buffer decodes in one native call; elsewhere short ASCII (ids, topics, event names) is
    // cheaper read here than through a decoder call.
    if (this.utf8Slice) return this.utf8Slice.call(bytes, start, end);
    if (length <= 64) {
      let ascii = true;
      for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) ascii = false;
      if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
    }
    return utf8.decode(bytes.subarray(start, end));
  }

  /** Skips a field of this wire type; false for a group or an unknown type (left to protobuf-es). */
  skip(wireType: number): boolean {
    switch (wireType) {
      case 0:
        this.varint();
        return true;
      case 1:
        this.at += 8;
        return true;
      case 2: {
        const length = this.varint(); // read first: `this.at += this.varint()` would add to the position before the length
        this.at += length;
        return true;
      }
      case 5:
        this.at += 4;
        return true;
      default:
        return false;
    }
  }
}

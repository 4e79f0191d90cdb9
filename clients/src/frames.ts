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
  const data = new JsonBatch(body);
  while (reader.more(body.length)) {
    if (reader.varint() !== FRAMES_TAG) return fromBinary(ConnectResponseSchema, body).frames; // not as the server writes it: the general decoder reads it all
    const length = reader.varint();
    const start = reader.at;
    const end = start + length;
    if (end > body.length) throw new RangeError("premature end of a server message");
    frames.push(payloadFrame(reader, end, data) ?? fromBinary(ServerFrameSchema, body.subarray(start, end)));
    reader.at = end;
  }
  data.parse();
  return frames;
}

/** Field 1 of ConnectResponse / ListenResponse, length-delimited. */
const FRAMES_TAG = (1 << 3) | 2;
/** Field 2 of ServerFrame (the payload), length-delimited. */
const PAYLOAD_TAG = (2 << 3) | 2;

/** A frame holding exactly one payload field, decoded; undefined for any other frame (then protobuf-es reads it). */
function payloadFrame(reader: Reader, frameEnd: number, data: JsonBatch): PayloadFrame | undefined {
  const from = reader.at;
  if (!reader.more(frameEnd) || reader.varint() !== PAYLOAD_TAG) return undefined;
  const length = reader.varint();
  const end = reader.at + length;
  if (end !== frameEnd) return (reader.at = from), undefined; // another field follows (or the length is off): the general decoder decides
  const value = payload(reader, end, data);
  if (!value) return (reader.at = from), undefined;
  return { kind: { case: "decodedPayload", value } };
}

/** RealtimePayload's fields, as in payload.proto; undefined when something is not as the server writes it. */
function payload(reader: Reader, end: number, batch: JsonBatch): RealtimePayload | undefined {
  let type = 0;
  let operation = 0;
  let topic = "";
  let event = "";
  let dataStart = 0;
  let dataEnd = 0;
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
        topic = reader.recentString(recent.topic);
        break;
      case (3 << 3) | 0:
        operation = reader.varint();
        break;
      case (4 << 3) | 2:
        event = reader.recentString(recent.event);
        break;
      case (5 << 3) | 2:
        dataEnd = reader.varint();
        dataStart = reader.at;
        dataEnd += dataStart;
        reader.at = dataEnd;
        break;
      case (6 << 3) | 2:
        old = reader.string();
        break;
      case (7 << 3) | 2:
        userId = reader.recentString(recent.userId);
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
        epoch = reader.recentString(recent.epoch);
        break;
      case (12 << 3) | 2:
        connectionId = reader.recentString(recent.connectionId);
        break;
      default:
        // A field this client does not know (a newer server) or an unusual encoding: skipped, as protobuf does.
        if (!reader.skip(tag & 7)) return undefined;
    }
  }
  if (reader.at !== end || timestamp < 0 || seq < 0 || dataEnd > end) return undefined;
  let value: RealtimePayload;
  if (operation === 0 && old === "" && userId !== "" && connectionId !== "" && seq > 0) {
    // What most payloads are (a persisted message from someone), made with all its fields at once:
    // the same object as below, without the property store V8 grows for fields added later.
    value = { type: kindOf(type), topic, event, data: null, timestamp, id, userId, connectionId, position: { seq, epoch } };
  } else {
    value = { type: kindOf(type), topic, event, data: null, timestamp, id };
    const op = operationOf(operation);
    if (op) value.operation = op;
    if (old !== "") value.old = parseJson(old);
    if (userId !== "") value.userId = userId;
    if (connectionId !== "") value.connectionId = connectionId;
    if (seq > 0) value.position = { seq, epoch };
  }
  if (dataEnd > dataStart) batch.add(value, dataStart, dataEnd);
  return value;
}

const utf8 = new TextDecoder();

/** The bytes and text of the last short string read for one field. */
class Recent {
  bytes = new Uint8Array(0);
  text = "";
}

/**
 * Fields that repeat from payload to payload (a channel's topic, its event
 * names, the publisher, the epoch): comparing a few bytes with the last one
 * read costs less than decoding them again.
 */
const recent = { topic: new Recent(), event: new Recent(), userId: new Recent(), epoch: new Recent(), connectionId: new Recent() };
/** Longer strings are decoded each time (comparing would cost about as much). */
const RECENT_MAX = 64;

/**
 * The `data` of a server message's payloads, parsed in one JSON.parse:
 * `[d1,d2,…]`. The server accepts only valid JSON texts as data, and
 * valid texts joined by commas in brackets are an array of exactly those
 * values; should anything else arrive (the count differs, or it does not
 * parse), each is parsed alone, which also says which one is at fault.
 */
class JsonBatch {
  private readonly targets: RealtimePayload[] = [];
  private readonly ranges: number[] = [];
  private bytes = 0;

  constructor(private readonly body: Uint8Array) {}

  add(target: RealtimePayload, start: number, end: number): void {
    this.targets.push(target);
    this.ranges.push(start, end);
    this.bytes += end - start;
  }

  parse(): void {
    const { targets, ranges, body } = this;
    if (targets.length === 0) return;
    if (targets.length > 1) {
      const text = joinedText(body, ranges, this.bytes + targets.length + 1);
      let values: unknown;
      try {
        values = JSON.parse(text);
      } catch {
        values = undefined;
      }
      if (Array.isArray(values) && values.length === targets.length) {
        for (let i = 0; i < targets.length; i++) targets[i]!.data = values[i];
        return;
      }
    }
    for (let i = 0; i < targets.length; i++) targets[i]!.data = parseJson(decodeUtf8(body, ranges[2 * i]!, ranges[2 * i + 1]!));
  }
}

/**
 * `[d1,d2,…]` as one text. Under Node each range is decoded by Buffer's
 * native call and the pieces are concatenated (JSON.parse flattens them in
 * one copy): copying the bytes first cost more, a typed-array view per
 * copy. Elsewhere the bytes are copied into one kept buffer and decoded in
 * one TextDecoder call, which costs the same for one range as for many.
 */
function joinedText(body: Uint8Array, ranges: number[], size: number): string {
  if ("utf8Slice" in body) {
    let text = "[";
    for (let i = 0; i < ranges.length; i += 2) text += (i === 0 ? "" : ",") + decodeUtf8(body, ranges[i]!, ranges[i + 1]!);
    return text + "]";
  }
  const joined = joinBuffer(size);
  let at = 0;
  for (let i = 0; i < ranges.length; i += 2) {
    joined[at++] = i === 0 ? 0x5b /* [ */ : 0x2c /* , */;
    const start = ranges[i]!;
    const end = ranges[i + 1]!;
    if (end - start > 32) joined.set(body.subarray(start, end), at);
    else for (let k = start; k < end; k++) joined[at + k - start] = body[k]!; // cheaper than a view for a few bytes
    at += end - start;
  }
  joined[at] = 0x5d; /* ] */
  return utf8.decode(joined.subarray(0, size));
}

/** The buffer joinedText copies into: kept and reused (a typed array per message costs more than the copying), unless a message needs more than JOIN_KEEP. */
let joinScratch: Uint8Array | undefined;
const JOIN_KEEP = 256 * 1024;

function joinBuffer(size: number): Uint8Array {
  if (joinScratch && joinScratch.length >= size) return joinScratch;
  const made = new Uint8Array(Math.max(size, 16 * 1024));
  if (size <= JOIN_KEEP) joinScratch = made;
  return made;
}

/** UTF-8 to text: Node's Buffer in one native call, elsewhere short ASCII (ids, topics, event names) by hand, the rest through TextDecoder. */
function decodeUtf8(bytes: Uint8Array, start: number, end: number): string {
  const slice = (bytes as { utf8Slice?: (start: number, end: number) => string }).utf8Slice;
  if (slice) return slice.call(bytes, start, end);
  if (end - start <= 64) {
    let ascii = true;
    for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) ascii = false;
    if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  return utf8.decode(bytes.subarray(start, end));
}

/** A cursor over protobuf's wire format: varints (as numbers, exact up to 2^53), strings, skips. */
class Reader {
  at = 0;

  constructor(private readonly bytes: Uint8Array) {}

  more(end: number): boolean {
    return this.at < end;
  }

  /** A varint as a number; 64-bit values past 2^53 lose precision (none the server writes comes near: times in ms, positions). */
  varint(): number {
    const bytes = this.bytes;
    const first = bytes[this.at]!;
    if (first < 0x80) {
      // Tags, lengths and small numbers: one byte (past the end, `undefined < 0x80` is false and the loop below throws).
      this.at++;
      return first;
    }
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
    if (end > this.bytes.length) throw new RangeError("premature end of a string");
    this.at = end;
    return length === 0 ? "" : decodeUtf8(this.bytes, start, end);
  }

  /** A string that is often the same as the last one read for its field. */
  recentString(last: Recent): string {
    const length = this.varint();
    const start = this.at;
    const end = start + length;
    const bytes = this.bytes;
    if (end > bytes.length) throw new RangeError("premature end of a string");
    this.at = end;
    if (length === 0) return "";
    if (length > RECENT_MAX) return decodeUtf8(bytes, start, end);
    const known = last.bytes;
    if (known.length === length) {
      let same = true;
      for (let i = 0; i < length; i++) {
        if (known[i] !== bytes[start + i]) {
          same = false;
          break;
        }
      }
      if (same) return last.text;
    }
    last.bytes = new Uint8Array(bytes.subarray(start, end)); // a copy: a view would keep the whole message alive
    last.text = decodeUtf8(bytes, start, end);
    return last.text;
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

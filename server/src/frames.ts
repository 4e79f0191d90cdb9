import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  ServerFrameSchema,
  type ServerFrame,
} from "../../gen/chorus/v1/realtime_pb.js";
import { payloadFrameField } from "./payload-wire.js";
import { Operation, PayloadType, RealtimePayloadSchema, type RealtimePayload } from "../../gen/chorus/v1/payload_pb.js";

/**
 * A server frame encoded once and shared by every session that sends it.
 *
 * `ConnectResponse` and `ListenResponse` are both `repeated ServerFrame
 * frames = 1`, so a batch for any session is the concatenation of its
 * frames' field encodings. `field` is exactly what protobuf-es writes after
 * the tag of an unknown field 1 (length prefix + frame bytes), which lets a
 * response carry pre-encoded frames without touching them again.
 */
export interface OutboundFrame {
  readonly frame: ServerFrame;
  readonly field: { readonly no: 1; readonly wireType: WireType.LengthDelimited; readonly data: Uint8Array };
  /** Encoded size, for queue accounting. */
  readonly size: number;
  /** True for frames that may be dropped when a subscriber lags (payloads). */
  readonly droppable: boolean;
  /** The payload's topic, for lag notices. */
  readonly topic: string;
  /** The payload's position in its topic (0: not persisted, or not a payload). */
  readonly seq: number;
}

export function encodeFrame(frame: ServerFrame, droppable = false, topic = "", seq = 0): OutboundFrame {
  // Payloads, the frames every publish makes, are written by hand; the rest by protobuf-es.
  const data = (frame.kind.case === "payload" && payloadFrameField(frame.kind.value)) || new BinaryWriter().bytes(toBinary(ServerFrameSchema, frame)).finish();
  return {
    frame,
    field: { no: 1, wireType: WireType.LengthDelimited, data },
    size: data.byteLength,
    droppable,
    topic,
    seq,
  };
}

/**
 * A reply whose frames-field bytes were written by hand (payload-wire.ts):
 * the ServerFrame message is decoded from them only if someone asks (the
 * JSON clients' path), which the binary paths never do.
 */
class PreEncodedFrame implements OutboundFrame {
  readonly field: OutboundFrame["field"];
  readonly size: number;
  readonly droppable = false;
  readonly topic = "";
  readonly seq = 0;
  private decoded: ServerFrame | undefined;

  constructor(data: Uint8Array) {
    this.field = { no: 1, wireType: WireType.LengthDelimited, data };
    this.size = data.byteLength;
  }

  get frame(): ServerFrame {
    if (this.decoded) return this.decoded;
    const data = this.field.data;
    let start = 0;
    while (data[start]! & 0x80) start++; // the length prefix
    return (this.decoded = fromBinary(ServerFrameSchema, data.subarray(start + 1)));
  }
}

export function preEncodedFrame(data: Uint8Array): OutboundFrame {
  return new PreEncodedFrame(data);
}

/** The fields of a persisted message, as engines store and replay it. */
export interface StoredFields {
  seq: number;
  id: string;
  event: string;
  data: string;
  userId: string;
  connectionId: string;
  createdAt: number;
  /** A database change's previous row (JSON text). */
  old?: string;
}

/** The row operations of database changes: on a table topic, these event names are the change tracker's alone. */
export const ROW_OPERATIONS: Readonly<Record<string, Operation>> = { INSERT: Operation.INSERT, UPDATE: Operation.UPDATE, DELETE: Operation.DELETE };

/**
 * A persisted (seq > 0) or ephemeral (seq 0) message as subscribers
 * receive it. On a table topic (no slash) an INSERT, UPDATE or DELETE is a
 * DB_CHANGE with its operation and previous row.
 */
export function storedPayload(topic: string, epoch: string, m: StoredFields): RealtimePayload {
  const operation = !topic.includes("/") ? ROW_OPERATIONS[m.event] : undefined;
  return create(RealtimePayloadSchema, {
    // Only the server sends `system:` and `stream:` events (clients may not publish them): notices kept in a
    // topic's history, and token streams (stream.ts).
    type: operation ? PayloadType.DB_CHANGE : m.event.startsWith("system:") ? PayloadType.SYSTEM : m.event.startsWith("stream:") ? PayloadType.STREAM : PayloadType.EVENT,
    operation: operation ?? Operation.UNSPECIFIED,
    old: m.old ?? "",
    topic,
    event: m.event,
    data: m.data,
    userId: m.userId,
    connectionId: m.connectionId,
    timestamp: BigInt(m.createdAt),
    id: m.id,
    seq: BigInt(m.seq),
    epoch,
  });
}

/** The inverse of storedPayload. */
export function storedFields(p: RealtimePayload): StoredFields {
  const fields: StoredFields = { seq: Number(p.seq), id: p.id, event: p.event, data: p.data, userId: p.userId, connectionId: p.connectionId, createdAt: Number(p.timestamp) };
  if (p.old !== "") fields.old = p.old;
  return fields;
}

/** A topic's payload frame: may be dropped for a lagging subscriber, who is then told. */
export function topicFrame(payload: RealtimePayload): OutboundFrame {
  return encodeFrame(frameOf({ kind: { case: "payload", value: payload } }), true, payload.topic, Number(payload.seq));
}

/** A persisted message as the payload frame subscribers receive. */
export function storedFrame(topic: string, epoch: string, m: StoredFields): OutboundFrame {
  return topicFrame(storedPayload(topic, epoch, m));
}

/** A persisted message replayed to one catching-up subscriber: paced, so never dropped as lag. */
export function replayFrame(topic: string, epoch: string, m: StoredFields): OutboundFrame {
  const payload = storedPayload(topic, epoch, m);
  return encodeFrame(frameOf({ kind: { case: "payload", value: payload } }), false, topic, m.seq);
}

/** A message sent to a user: no topic; never dropped as lag, like a reply. */
export function userPayload(m: { id: string; event: string; data: string; timestamp: number }): RealtimePayload {
  return create(RealtimePayloadSchema, { type: PayloadType.EVENT, topic: "", event: m.event, data: m.data, timestamp: BigInt(m.timestamp), id: m.id });
}

export function userFrame(payload: RealtimePayload): OutboundFrame {
  return encodeFrame(frameOf({ kind: { case: "payload", value: payload } }));
}

export function frameOf(init: MessageInitShape<typeof ServerFrameSchema>): ServerFrame {
  return create(ServerFrameSchema, init);
}

/** A SYSTEM payload: a notice about a subscription, never user data. */
export function systemNotice(topic: string, event: string, data: unknown): OutboundFrame {
  const payload = create(RealtimePayloadSchema, {
    type: PayloadType.SYSTEM,
    topic,
    event,
    data: JSON.stringify(data),
    timestamp: BigInt(Date.now()),
  });
  return encodeFrame(frameOf({ kind: { case: "payload", value: payload } }), false, topic);
}

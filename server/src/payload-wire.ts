import type { RealtimePayload } from "../../gen/chorus/v1/payload_pb.js";
import type { PublishResponse } from "../../gen/chorus/v1/realtime_pb.js";
import { stringSize, varintSize, writeString, writeTag, writeVarint } from "../../clients/src/proto-wire.js";

/**
 * The two frames every publish makes, written by hand: the payload its
 * subscribers receive and the reply its publisher receives.
 */

/**
 * The bytes of a payload frame, written by hand: what protobuf-es writes
 * for `ServerFrame { payload = 2 }` after the tag of the frames field
 * (length prefix, then the frame), byte for byte, in one allocation and
 * without reflection. It is the one message every publish encodes, so its
 * cost is the ingest path's; test/unit/payload-wire.test.ts holds it to
 * protobuf-es' own output. Undefined when a value is outside what this
 * writer handles (a negative or unsafe integer): the caller falls back.
 */
export function payloadFrameField(p: RealtimePayload): Uint8Array | undefined {
  const timestamp = Number(p.timestamp);
  const seq = Number(p.seq);
  if (!(timestamp >= 0 && timestamp <= Number.MAX_SAFE_INTEGER && seq >= 0 && seq <= Number.MAX_SAFE_INTEGER)) return undefined;
  // Field by field, in number order, as protobuf-es writes them; proto3 defaults are left out.
  const topic = Buffer.byteLength(p.topic);
  const event = Buffer.byteLength(p.event);
  const data = Buffer.byteLength(p.data);
  const old = Buffer.byteLength(p.old);
  const userId = Buffer.byteLength(p.userId);
  const id = Buffer.byteLength(p.id);
  const epoch = Buffer.byteLength(p.epoch);
  const connectionId = Buffer.byteLength(p.connectionId);
  const payloadSize =
    (p.type !== 0 ? 1 + varintSize(p.type) : 0) +
    stringSize(topic) +
    (p.operation !== 0 ? 1 + varintSize(p.operation) : 0) +
    stringSize(event) +
    stringSize(data) +
    stringSize(old) +
    stringSize(userId) +
    (timestamp !== 0 ? 1 + varintSize(timestamp) : 0) +
    stringSize(id) +
    (seq !== 0 ? 1 + varintSize(seq) : 0) +
    stringSize(epoch) +
    stringSize(connectionId);
  const frameSize = 1 + varintSize(payloadSize) + payloadSize;
  const out = Buffer.allocUnsafe(varintSize(frameSize) + frameSize);
  let pos = writeVarint(out, 0, frameSize);
  out[pos++] = 0x12; // ServerFrame.payload (2), length-delimited
  pos = writeVarint(out, pos, payloadSize);
  if (p.type !== 0) pos = writeVarint(out, writeTag(out, pos, 0x08), p.type);
  pos = writeString(out, pos, 0x12, p.topic, topic);
  if (p.operation !== 0) pos = writeVarint(out, writeTag(out, pos, 0x18), p.operation);
  pos = writeString(out, pos, 0x22, p.event, event);
  pos = writeString(out, pos, 0x2a, p.data, data);
  pos = writeString(out, pos, 0x32, p.old, old);
  pos = writeString(out, pos, 0x3a, p.userId, userId);
  if (timestamp !== 0) pos = writeVarint(out, writeTag(out, pos, 0x40), timestamp);
  pos = writeString(out, pos, 0x4a, p.id, id);
  if (seq !== 0) pos = writeVarint(out, writeTag(out, pos, 0x50), seq);
  pos = writeString(out, pos, 0x5a, p.epoch, epoch);
  writeString(out, pos, 0x62, p.connectionId, connectionId);
  return out;
}

/**
 * The frames-field bytes of the reply to a publish (`ServerFrame { reply =
 * 3: Reply { request_id = 1, publish = 5 } }`), written by hand like the
 * payload above: every publish gets one. Undefined when a number is out of
 * this writer's range (the caller falls back to protobuf-es).
 */
export function publishReplyField(requestId: bigint, reply: PublishResponse): Uint8Array | undefined {
  const request = Number(requestId);
  const timestamp = Number(reply.timestamp);
  const seq = reply.position ? Number(reply.position.seq) : 0;
  if (!(request >= 0 && request <= Number.MAX_SAFE_INTEGER && timestamp >= 0 && timestamp <= Number.MAX_SAFE_INTEGER && seq >= 0 && seq <= Number.MAX_SAFE_INTEGER)) return undefined;
  const id = Buffer.byteLength(reply.id);
  const epoch = reply.position ? Buffer.byteLength(reply.position.epoch) : 0;
  const positionSize = reply.position ? (seq !== 0 ? 1 + varintSize(seq) : 0) + stringSize(epoch) : -1;
  const responseSize = stringSize(id) + (positionSize >= 0 ? 1 + varintSize(positionSize) + positionSize : 0) + (timestamp !== 0 ? 1 + varintSize(timestamp) : 0);
  const { out, at } = replyFrame(request, 0x2a, responseSize); // Reply.publish (5)
  let pos = writeString(out, at, 0x0a, reply.id, id); // PublishResponse.id (1)
  if (reply.position) {
    pos = writeVarint(out, writeTag(out, pos, 0x12), positionSize); // PublishResponse.position (2)
    if (seq !== 0) pos = writeVarint(out, writeTag(out, pos, 0x08), seq);
    pos = writeString(out, pos, 0x12, reply.position.epoch, epoch);
  }
  if (timestamp !== 0) writeVarint(out, writeTag(out, pos, 0x18), timestamp); // PublishResponse.timestamp (3)
  return out;
}

/**
 * The frames-field bytes of a refusal (`ServerFrame { reply = 3: Reply {
 * request_id = 1, error = 2: ReplyError { code, message } } }`), by hand:
 * a client flooding past its rate gets thousands a second.
 */
export function errorReplyField(requestId: bigint, code: number, message: string): Uint8Array | undefined {
  const request = Number(requestId);
  if (!(request >= 0 && request <= Number.MAX_SAFE_INTEGER && code >= 0 && code <= 0x7fffffff)) return undefined;
  const text = Buffer.byteLength(message);
  const errorSize = (code !== 0 ? 1 + varintSize(code) : 0) + stringSize(text);
  const { out, at } = replyFrame(request, 0x12, errorSize); // Reply.error (2)
  let pos = at;
  if (code !== 0) pos = writeVarint(out, writeTag(out, pos, 0x08), code); // ReplyError.code (1)
  writeString(out, pos, 0x12, message, text); // ReplyError.message (2)
  return out;
}

/**
 * A reply frame's buffer with everything before its result written (the
 * frames-field length, ServerFrame.reply, Reply.request_id, the result's tag
 * and length); the caller writes the `resultSize` bytes of the result at `at`.
 */
function replyFrame(request: number, resultTag: number, resultSize: number): { out: Buffer; at: number } {
  const replySize = (request !== 0 ? 1 + varintSize(request) : 0) + 1 + varintSize(resultSize) + resultSize;
  const frameSize = 1 + varintSize(replySize) + replySize;
  const out = Buffer.allocUnsafe(varintSize(frameSize) + frameSize);
  let pos = writeVarint(out, 0, frameSize);
  pos = writeVarint(out, writeTag(out, pos, 0x1a), replySize); // ServerFrame.reply (3)
  if (request !== 0) pos = writeVarint(out, writeTag(out, pos, 0x08), request); // Reply.request_id (1)
  return { out, at: writeVarint(out, writeTag(out, pos, resultTag), resultSize) };
}

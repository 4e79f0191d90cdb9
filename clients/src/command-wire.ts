import type { CommandInit } from "./session.js";
import { stringSize, varintSize, writeString, writeTag, writeVarint } from "./proto-wire.js";

/**
 * The enveloped bytes of a publish command on the bidirectional session
 * (`ConnectRequest { request_id = 1, publish = 4: PublishRequest }`),
 * written by hand: what protobuf-es writes, byte for byte, without
 * reflection (it was a quarter of a Node client's CPU per publish).
 * test/unit/command-wire.test.ts holds it to protobuf-es' own output.
 * Undefined when the request id is past 2^53 (the caller falls back).
 */
export function publishCommandEnvelope(requestId: bigint, publish: CommandInit<"publish">): Buffer | undefined {
  const request = Number(requestId);
  if (!(request >= 0 && request <= Number.MAX_SAFE_INTEGER)) return undefined;
  const sessionId = publish.sessionId ?? "";
  const topic = publish.topic ?? "";
  const event = publish.event ?? "";
  const data = publish.data ?? "";
  const id = publish.id ?? "";
  const sessionIdBytes = Buffer.byteLength(sessionId);
  const topicBytes = Buffer.byteLength(topic);
  const eventBytes = Buffer.byteLength(event);
  const dataBytes = Buffer.byteLength(data);
  const idBytes = Buffer.byteLength(id);
  // Field by field, in number order, as protobuf-es writes them; proto3 defaults are left out.
  const publishSize = stringSize(sessionIdBytes) + stringSize(topicBytes) + stringSize(eventBytes) + stringSize(dataBytes) + (publish.persist ? 2 : 0) + stringSize(idBytes);
  const messageSize = (request !== 0 ? 1 + varintSize(request) : 0) + 1 + varintSize(publishSize) + publishSize;
  const out = Buffer.allocUnsafe(5 + messageSize);
  out[0] = 0; // envelope flags
  out.writeUInt32BE(messageSize, 1);
  let pos = 5;
  if (request !== 0) pos = writeVarint(out, writeTag(out, pos, 0x08), request); // request_id (1)
  pos = writeVarint(out, writeTag(out, pos, 0x22), publishSize); // publish (4)
  pos = writeString(out, pos, 0x0a, sessionId, sessionIdBytes);
  pos = writeString(out, pos, 0x12, topic, topicBytes);
  pos = writeString(out, pos, 0x1a, event, eventBytes);
  pos = writeString(out, pos, 0x22, data, dataBytes);
  if (publish.persist) pos = writeVarint(out, writeTag(out, pos, 0x28), 1);
  writeString(out, pos, 0x32, id, idBytes);
  return out;
}

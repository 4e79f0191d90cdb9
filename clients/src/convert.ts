import { Operation, PayloadType, type HistoryMessage as HistoryMessageProto, type RealtimePayload as PayloadProto, type StreamPosition } from "../../gen/chorus/v1/payload_pb.js";
import type { HistoryMessage, PayloadKind, Position, RealtimePayload } from "./types.js";

const KINDS: Record<PayloadType, PayloadKind> = {
  [PayloadType.UNSPECIFIED]: "event",
  [PayloadType.DB_CHANGE]: "db_change",
  [PayloadType.EVENT]: "event",
  [PayloadType.PRESENCE]: "presence",
  [PayloadType.STREAM]: "stream",
  [PayloadType.SYSTEM]: "system",
};

const OPERATIONS: Partial<Record<Operation, RealtimePayload["operation"]>> = {
  [Operation.INSERT]: "INSERT",
  [Operation.UPDATE]: "UPDATE",
  [Operation.DELETE]: "DELETE",
};

export function parseJson(text: string): unknown {
  return text === "" ? null : JSON.parse(text);
}

export function positionOf(p: StreamPosition | undefined): Position | undefined {
  return p && p.seq > 0n ? { seq: Number(p.seq), epoch: p.epoch } : undefined;
}

/** A payload's kind from its wire value (unknown values: an event). */
export function kindOf(type: number): PayloadKind {
  return KINDS[type as PayloadType] ?? "event";
}

/** A DB change's operation from its wire value; undefined for none. */
export function operationOf(operation: number): RealtimePayload["operation"] {
  return OPERATIONS[operation as Operation];
}

export function toPayload(p: PayloadProto): RealtimePayload {
  const payload: RealtimePayload = {
    type: kindOf(p.type),
    topic: p.topic,
    event: p.event,
    data: parseJson(p.data),
    timestamp: Number(p.timestamp),
    id: p.id,
  };
  const operation = operationOf(p.operation);
  if (operation) payload.operation = operation;
  if (p.old !== "") payload.old = parseJson(p.old);
  if (p.userId !== "") payload.userId = p.userId;
  if (p.connectionId !== "") payload.connectionId = p.connectionId;
  if (p.seq > 0n) payload.position = { seq: Number(p.seq), epoch: p.epoch };
  return payload;
}

export function toHistoryMessage(m: HistoryMessageProto): HistoryMessage {
  return {
    id: m.id,
    room_id: m.roomId,
    user_id: m.userId,
    event: m.event,
    data: parseJson(m.data),
    created_at: Number(m.createdAt),
    seq: Number(m.seq),
    ...(m.old !== "" ? { old: parseJson(m.old) } : {}),
  };
}

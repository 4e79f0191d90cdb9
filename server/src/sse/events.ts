import { PayloadType, type RealtimePayload } from "../../../gen/chorus/v1/payload_pb.js";
import type { OutboundFrame } from "../frames.js";

/**
 * Server frames as Server-Sent Events (the `text/event-stream` format).
 *
 * A payload becomes `event: <its event>` and `data: <the payload as JSON>`,
 * in the shape the SDK hands its listeners: `{ type, topic, event, data,
 * timestamp, id, userId?, connectionId?, operation?, old?, position? }`, with
 * `data` and `old` as JSON values, not strings. That text is the same for
 * every subscriber of a payload, so it is made once per frame (the fan-out
 * shares one frame object among its subscribers) and kept beside it; only
 * the `id:` line, which carries each stream's own positions, is per stream.
 */
const texts = new WeakMap<OutboundFrame, string>();

const KINDS: Record<number, string> = {
  [PayloadType.EVENT]: "event",
  [PayloadType.DB_CHANGE]: "db_change",
  [PayloadType.PRESENCE]: "presence",
  [PayloadType.STREAM]: "stream",
  [PayloadType.SYSTEM]: "system",
};
const OPERATIONS = ["", "INSERT", "UPDATE", "DELETE"];

/** The `event:` and `data:` lines of a payload frame, and the blank line that ends the event. */
export function payloadEvent(frame: OutboundFrame, payload: RealtimePayload): string {
  let text = texts.get(frame);
  if (text === undefined) {
    text = `${eventLine(payload.event)}data: ${payloadJson(payload)}\n\n`;
    texts.set(frame, text);
  }
  return text;
}

/**
 * An event of the stream's own (`system:welcome`, `system:disconnect`,
 * `system:error`), shaped like every other: a system payload whose `data`
 * says what happened.
 */
export function systemEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify({ type: "system", topic: "", event, data, timestamp: Date.now(), id: "" })}\n\n`;
}

/**
 * An event name may hold any character; a line break in it would end the
 * field (and could forge others). Such a payload goes out as the default
 * `message` event, its name still in the data.
 */
function eventLine(event: string): string {
  return /[\r\n\0]/.test(event) ? "" : `event: ${event}\n`;
}

function payloadJson(p: RealtimePayload): string {
  let json = `{"type":"${KINDS[p.type] ?? "event"}","topic":${JSON.stringify(p.topic)},"event":${JSON.stringify(p.event)},"data":${jsonValue(p.data)},"timestamp":${p.timestamp},"id":${JSON.stringify(p.id)}`;
  if (p.operation) json += `,"operation":"${OPERATIONS[p.operation] ?? ""}"`;
  if (p.old !== "") json += `,"old":${jsonValue(p.old)}`;
  if (p.userId !== "") json += `,"userId":${JSON.stringify(p.userId)}`;
  if (p.connectionId !== "") json += `,"connectionId":${JSON.stringify(p.connectionId)}`;
  if (p.seq > 0n) json += `,"position":{"seq":${p.seq},"epoch":${JSON.stringify(p.epoch)}}`;
  return `${json}}`;
}

/**
 * A payload's JSON text as a value inside the event's JSON. Every such
 * text was checked to be JSON when it came in, so it is inserted as it is;
 * one with line breaks (pretty-printed: only whitespace can hold them) is
 * written again without, as a `data:` field ends at a line break.
 */
function jsonValue(text: string): string {
  if (text === "") return "null";
  return /[\r\n]/.test(text) ? JSON.stringify(JSON.parse(text)) : text;
}

/** A topic's place in its history: what `Last-Event-ID` carries back. */
export interface TopicPosition {
  epoch: string;
  seq: number;
}

/**
 * The `id:` of an event: the position reached in every topic of the stream,
 * `topic:epoch:seq`, separated by spaces (a topic holds no space; an epoch
 * no colon), the event's own topic first. A browser sends the last id back
 * as `Last-Event-ID` when it reconnects, so one id must resume them all.
 */
export function formatPositions(positions: ReadonlyMap<string, TopicPosition>, first?: string): string {
  const parts: string[] = [];
  const own = first === undefined ? undefined : positions.get(first);
  if (own) parts.push(`${first}:${own.epoch}:${own.seq}`);
  for (const [topic, p] of positions) if (topic !== first) parts.push(`${topic}:${p.epoch}:${p.seq}`);
  return parts.join(" ");
}

/** Reads `formatPositions`' text; undefined when it is not such a text. */
export function parsePositions(text: string): Map<string, TopicPosition> | undefined {
  const positions = new Map<string, TopicPosition>();
  for (const part of text.split(" ")) {
    if (part === "") continue;
    const seqAt = part.lastIndexOf(":");
    const epochAt = part.lastIndexOf(":", seqAt - 1);
    if (epochAt <= 0) return undefined;
    const seq = Number(part.slice(seqAt + 1));
    if (!Number.isSafeInteger(seq) || seq < 0 || !/^\d+$/.test(part.slice(seqAt + 1))) return undefined;
    positions.set(part.slice(0, epochAt), { epoch: part.slice(epochAt + 1, seqAt), seq });
  }
  return positions;
}

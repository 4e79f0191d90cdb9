import { Code, ConnectError } from "@connectrpc/connect";

/** Checks shared by every way a message can enter: Publish, the bidi frame, Emit. */
export interface MessageLimits {
  maxPayloadBytes: number;
  maxEventLength: number;
}

export function checkEvent(event: string, limits: MessageLimits): void {
  if (event.length === 0) {
    throw new ConnectError("event is empty: name the event, for example \"message\"", Code.InvalidArgument);
  }
  if (event.length > limits.maxEventLength) {
    throw new ConnectError(`event is ${event.length} characters long; the limit is ${limits.maxEventLength}`, Code.InvalidArgument);
  }
}

/** Returns the JSON text to store and deliver ("null" for empty). */
export function checkData(data: string, limits: MessageLimits, field = "data"): string {
  if (data.length === 0) return "null";
  // Cheap bound first: UTF-8 needs at most 3 bytes per UTF-16 unit.
  if (data.length * 3 > limits.maxPayloadBytes) {
    const bytes = Buffer.byteLength(data);
    if (bytes > limits.maxPayloadBytes) {
      throw new ConnectError(
        `${field} is ${bytes} bytes; the limit is ${limits.maxPayloadBytes} bytes: send less, or split it into several messages`,
        Code.ResourceExhausted,
      );
    }
  }
  try {
    JSON.parse(data);
  } catch (error) {
    throw new ConnectError(`${field} is not valid JSON text (${(error as Error).message})`, Code.InvalidArgument);
  }
  return data;
}

const ID = /^[A-Za-z0-9_\-.:]{1,128}$/;

export function checkMessageId(id: string): void {
  if (id !== "" && !ID.test(id)) {
    throw new ConnectError("id must be 1-128 characters of letters, digits and _ - . :", Code.InvalidArgument);
  }
}

export const HISTORY_DEFAULT_LIMIT = 50;
export const HISTORY_MAX_LIMIT = 1000;

export function checkHistoryLimit(limit: number): number {
  if (limit === 0) return HISTORY_DEFAULT_LIMIT;
  if (limit > HISTORY_MAX_LIMIT) {
    throw new ConnectError(`limit ${limit} is out of range: use 1 to ${HISTORY_MAX_LIMIT} (0 means ${HISTORY_DEFAULT_LIMIT})`, Code.InvalidArgument);
  }
  return limit;
}

/** User ids, wherever they come from (a token's sub, SendToUser, an emit's attribution). */
export const USER_ID = /^[\x21-\x7e]{1,128}$/;

export function checkUserId(userId: string, field = "user_id"): void {
  if (!USER_ID.test(userId)) {
    throw new ConnectError(`${field} must be 1-128 printable ASCII characters without spaces`, Code.InvalidArgument);
  }
}

/**
 * Bounds for the string fields that no other rule bounds, checked before
 * anything reaches the engine, NATS or disk.
 */
export const FIELD_LIMITS = {
  sessionId: 64,
  epoch: 64,
  listenClient: 256,
  token: 16 * 1024,
  filter: 1024,
} as const;

export function checkLength(value: string, max: number, field: string): void {
  if (value.length > max) throw new ConnectError(`${field} is ${value.length} characters long; the limit is ${max}`, Code.InvalidArgument);
}

/** The shapes app code sees. Protocol types come from gen/; these are their JS faces. */

export type ConnectionStatus = "idle" | "connecting" | "connected" | "reconnecting" | "disconnected";

export type PayloadKind = "db_change" | "event" | "presence" | "stream" | "system";

export interface Position {
  seq: number;
  epoch: string;
}

/** What a channel listener receives. */
export interface RealtimePayload<T = any> {
  type: PayloadKind;
  topic: string;
  /** DB changes only. */
  operation?: "INSERT" | "UPDATE" | "DELETE";
  event: string;
  data: T;
  /** The previous row (UPDATE and DELETE only). */
  old?: T;
  /** Who published it; undefined for back-end emits. */
  userId?: string;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  /** Unique per message. */
  id: string;
  /** Where a persisted message stands in its topic; undefined for ephemeral ones. */
  position?: Position;
  /** The publishing connection; undefined for back-end emits. */
  connectionId?: string;
}

/** A persisted message, as getHistory returns it (newest first). */
export interface HistoryMessage<T = any> {
  id: string;
  room_id: string;
  user_id: string;
  event: string;
  data: T;
  /** Milliseconds since the Unix epoch; unique and increasing within a topic. */
  created_at: number;
  seq: number;
  /** Table topics: the previous row of an UPDATE or DELETE. */
  old?: T;
}

export interface PublishOptions {
  /** Store the message in the topic's history. */
  persist?: boolean;
  /** Your own id for the message: a retried publish with the same id is stored once. */
  id?: string;
}

export interface PublishResult {
  id: string;
  timestamp: number;
  /** Persisted messages only. */
  position?: Position;
}

export type Listener<T = any> = (payload: RealtimePayload<T>) => void;

export type SubscribeStatus = "SUBSCRIBED" | "CHANNEL_ERROR" | "CLOSED";

/** Where a channel's subscription stands (channel.state). */
export type ChannelState = "closed" | "joining" | "joined" | "errored";

/**
 * Event names to the data each carries, for a typed channel:
 * `realtime.channel<{ message: ChatMessage; typing: { userId: string } }>("chat/general")`
 * types `on`, `off`, `publish` and `getHistory` (other event names stay untyped).
 */
export type EventMap = Record<string, any>;

/** The events of a table topic, for `realtime.channel<TableEvents<Order>>("orders")`: `data` and `old` are rows. */
export interface TableEvents<Row> {
  INSERT: Row;
  UPDATE: Row;
  DELETE: Row;
}

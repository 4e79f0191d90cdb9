import type { OutboundFrame } from "../frames.js";

/** One persisted message as engines store and replay it. */
export interface StoredMessage {
  readonly seq: number;
  readonly id: string;
  readonly event: string;
  /** JSON text. */
  readonly data: string;
  readonly userId: string;
  readonly connectionId: string;
  /** A database change's previous row (JSON text): UPDATE and DELETE on table topics only. */
  readonly old?: string;
  /**
   * Milliseconds since the Unix epoch, strictly increasing within a topic
   * (a burst of more than one message per millisecond runs ahead of the
   * clock), so that paging with `before = created_at` never skips a message.
   */
  readonly createdAt: number;
}

/** How much one read may return: at most `limit` messages and about `maxBytes` of them (always at least one). */
export interface ReadLimits {
  limit: number;
  /** 0: no bound but the count. */
  maxBytes: number;
}

export interface HistoryQuery extends ReadLimits {
  /** Exclusive upper bound on createdAt; 0 for none. */
  before: number;
  /** Exclusive upper bound on seq; 0 for none. */
  beforeSeq: number;
}

export interface Recovery {
  /** Oldest first. */
  messages: StoredMessage[];
  epoch: string;
  /** The oldest retained seq (lastSeq + 1 when nothing is retained). */
  firstSeq: number;
  lastSeq: number;
}

export interface HistoryPage {
  /** Newest first. */
  messages: StoredMessage[];
  epoch: string;
  lastSeq: number;
  hasMore: boolean;
}

/** The bytes a stored message costs in a page (its strings plus a fixed overhead). */
export function messageBytes(m: StoredMessage): number {
  return m.data.length + (m.old?.length ?? 0) + m.event.length + m.id.length + m.userId.length + m.connectionId.length + 48;
}

/** A message entering the system, already validated and authorised. */
export interface PublishInput {
  topic: string;
  event: string;
  /** JSON text. */
  data: string;
  persist: boolean;
  /** Caller-chosen id for idempotent retries; empty to let the engine assign one. */
  id: string;
  /** Who publishes ("user:<id>", "key:<n>"): a retry is recognised by its id within its publisher's own. */
  publisher: string;
  userId: string;
  connectionId: string;
  /** A database change's previous row (JSON text). */
  old?: string;
}

export interface PublishResult {
  id: string;
  /** 0 when the message was not persisted. */
  seq: number;
  epoch: string;
  timestamp: number;
}

/** A message for every connection of one user (SendToUser). */
export interface UserMessage {
  userId: string;
  id: string;
  event: string;
  /** JSON text. */
  data: string;
  timestamp: number;
}

/** Where an engine hands messages for this node's sessions. */
export interface Delivery {
  /** Every message of a watched topic, exactly once, already encoded, in the topic's order. */
  toTopic(topic: string, frame: OutboundFrame): void;
  /** Every message for a watched user. */
  toUser(userId: string, frame: OutboundFrame): void;
}

/**
 * Where fan-out and history live. A node tells its engine which topics and
 * users it has sessions for (`watch`), and the engine hands it their
 * messages, from whichever node they were published on.
 */
export interface Engine {
  readonly name: string;
  /** Whether it can take publishes now (the NATS engine: connected to NATS). */
  readonly ready: boolean;
  /** Connects and prepares storage; the node serves nothing before this settles. */
  start(): Promise<void>;
  /**
   * Accepts the message synchronously, in call order, and settles once it
   * is durable (persisted) or handed to fan-out (ephemeral).
   */
  publish(input: PublishInput): Promise<PublishResult>;
  sendToUser(message: UserMessage): void;
  history(topic: string, query: HistoryQuery): Promise<HistoryPage>;
  /** Persisted messages after `seq`, oldest first, within `limits`. */
  since(topic: string, seq: number, limits: ReadLimits): Promise<Recovery>;
  /** Starts delivering the topic to this node (the hub calls it when the first local session joins). */
  watch(topic: string): void;
  /**
   * Settles once a watched topic is live: every message stored from then on
   * is sure to be delivered, so a position read afterwards leaves no gap.
   * Rejects with UNAVAILABLE when that cannot be ensured now.
   */
  live(topic: string): Promise<void>;
  unwatch(topic: string): void;
  watchUser(userId: string): void;
  unwatchUser(userId: string): void;
  close(): Promise<void>;
}

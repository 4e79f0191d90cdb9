import type { OutboundFrame } from "../frames.js";
import type { HistoryPage, HistoryQuery, Recovery } from "./history-file.js";

export type { HistoryPage, HistoryQuery, Recovery, StoredMessage } from "./history-file.js";

/** A message entering the system, already validated and authorised. */
export interface PublishInput {
  topic: string;
  event: string;
  /** JSON text. */
  data: string;
  persist: boolean;
  /** Caller-chosen id for idempotent retries; empty to let the engine assign one. */
  id: string;
  userId: string;
  connectionId: string;
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
  /** Connects and prepares storage; the node serves nothing before this settles. */
  start(): Promise<void>;
  /**
   * Accepts the message synchronously, in call order, and settles once it
   * is durable (persisted) or handed to fan-out (ephemeral).
   */
  publish(input: PublishInput): Promise<PublishResult>;
  sendToUser(message: UserMessage): void;
  history(topic: string, query: HistoryQuery): Promise<HistoryPage>;
  /** Persisted messages after `seq`, oldest first, at most `limit`. */
  since(topic: string, seq: number, limit: number): Promise<Recovery>;
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

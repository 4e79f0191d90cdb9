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

/**
 * Where fan-out and history live. The node hands every message for a topic
 * with local subscribers to `deliver` exactly once, already encoded, in the
 * topic's order.
 */
export interface Engine {
  readonly name: string;
  /**
   * Accepts the message synchronously, in call order, and settles once it
   * is durable (persisted) or handed to fan-out (ephemeral).
   */
  publish(input: PublishInput): Promise<PublishResult>;
  history(topic: string, query: HistoryQuery): Promise<HistoryPage>;
  /** Persisted messages after `seq`, oldest first, at most `limit`. */
  since(topic: string, seq: number, limit: number): Promise<Recovery>;
  close(): Promise<void>;
}

export type Deliver = (topic: string, frame: OutboundFrame) => void;

import { storedFrame, userFrame, userPayload } from "../frames.js";
import type { IdGenerator } from "../ids.js";
import type { Delivery, Engine, HistoryPage, HistoryQuery, PublishInput, PublishResult, Recovery, UserMessage } from "./engine.js";
import { FileHistory } from "./history-file.js";
import type { RetentionRule } from "./retention.js";

/** How long a caller-chosen id is remembered for de-duplicating retries. */
const DEDUP_WINDOW_MS = 2 * 60_000;

/**
 * Everything in this process: fan-out is a direct call into the hub, and
 * persisted history lives in files under the data directory.
 */
export class MemoryEngine implements Engine {
  readonly name = "memory";
  private readonly store: FileHistory;
  /** Recently persisted caller-chosen ids per topic, for retried publishes. */
  private readonly recentIds = new Map<string, { result: PublishResult; written: Promise<void>; at: number }>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    dataDir: string,
    retention: readonly RetentionRule[],
    private readonly ids: IdGenerator,
    private readonly delivery: Delivery,
  ) {
    this.store = new FileHistory(dataDir, retention);
    this.sweep = setInterval(() => this.forgetOldIds(), DEDUP_WINDOW_MS / 4).unref();
  }

  async start(): Promise<void> {}

  publish(input: PublishInput): Promise<PublishResult> {
    const dedupKey = input.persist && input.id ? `${input.topic}\u0000${input.id}` : "";
    const seen = dedupKey ? this.recentIds.get(dedupKey) : undefined;
    if (seen) return seen.written.then(() => seen.result);

    const id = input.id || this.ids.next();
    let result: PublishResult;
    let written: Promise<void> | undefined;
    if (input.persist) {
      const appended = this.store.append(input.topic, {
        id,
        event: input.event,
        data: input.data,
        userId: input.userId,
        connectionId: input.connectionId,
      });
      result = { id, seq: appended.stored.seq, epoch: appended.epoch, timestamp: appended.stored.createdAt };
      written = appended.written;
      if (dedupKey) this.recentIds.set(dedupKey, { result, written, at: Date.now() });
    } else {
      result = { id, seq: 0, epoch: "", timestamp: Date.now() };
    }

    this.delivery.toTopic(
      input.topic,
      storedFrame(input.topic, result.epoch, {
        seq: result.seq,
        id,
        event: input.event,
        data: input.data,
        userId: input.userId,
        connectionId: input.connectionId,
        createdAt: result.timestamp,
      }),
    );
    return written ? written.then(() => result) : Promise.resolve(result);
  }

  sendToUser(message: UserMessage): void {
    this.delivery.toUser(message.userId, userFrame(userPayload(message)));
  }

  // Delivery is a direct call from publish: every topic and user is always "watched".
  watch(): void {}
  async live(): Promise<void> {}
  unwatch(): void {}
  watchUser(): void {}
  unwatchUser(): void {}

  async history(topic: string, query: HistoryQuery): Promise<HistoryPage> {
    return this.store.query(topic, query);
  }

  async since(topic: string, seq: number, limit: number): Promise<Recovery> {
    return this.store.since(topic, seq, limit);
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    await this.store.close();
  }

  private forgetOldIds(): void {
    const cutoff = Date.now() - DEDUP_WINDOW_MS;
    for (const [key, entry] of this.recentIds) {
      if (entry.at >= cutoff) break; // insertion order is time order
      this.recentIds.delete(key);
    }
  }
}

import { storedFrame, userFrame, userPayload } from "../frames.js";
import type { IdGenerator } from "../ids.js";
import type { Delivery, Engine, HistoryPage, HistoryQuery, PublishInput, PublishResult, ReadLimits, Recovery, UserMessage } from "./engine.js";
import { HistoryStore, type HistoryOptions } from "./store/history-store.js";

/**
 * Everything in this process: fan-out is a direct call into the hub, and
 * persisted history lives in files under the data directory.
 *
 * A persisted message is written (and fsynced, with fsync "always")
 * before anyone receives it or its publisher is acknowledged; an
 * ephemeral one goes out at once, unless persisted messages published
 * before it on the same topic are still being written (then it waits for
 * them, so a publisher's order holds across both kinds).
 */
export class MemoryEngine implements Engine {
  readonly name = "memory";
  readonly ready = true;
  private readonly store: HistoryStore;

  constructor(
    options: HistoryOptions,
    private readonly ids: IdGenerator,
    private readonly delivery: Delivery,
  ) {
    this.store = new HistoryStore(options);
  }

  async start(): Promise<void> {}

  publish(input: PublishInput): Promise<PublishResult> {
    const id = input.id || this.ids.next();
    if (!input.persist) {
      const timestamp = Date.now();
      const frame = storedFrame(input.topic, "", { seq: 0, id, event: input.event, data: input.data, userId: input.userId, connectionId: input.connectionId, createdAt: timestamp });
      this.store.passThrough(input.topic, () => this.delivery.toTopic(input.topic, frame));
      return Promise.resolve({ id, seq: 0, epoch: "", timestamp });
    }
    return this.store.append(
      input.topic,
      { id, clientId: input.id !== "", publisher: input.publisher, event: input.event, data: input.data, userId: input.userId, connectionId: input.connectionId, old: input.old },
      (message, epoch) => this.delivery.toTopic(input.topic, storedFrame(input.topic, epoch, message)),
    );
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

  history(topic: string, query: HistoryQuery): Promise<HistoryPage> {
    return this.store.query(topic, query);
  }

  since(topic: string, seq: number, limits: ReadLimits): Promise<Recovery> {
    return this.store.since(topic, seq, limits);
  }

  /** What the store holds, for tests and operators. */
  get footprint(): HistoryStore["footprint"] {
    return this.store.footprint;
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

import { Code, ConnectError } from "@connectrpc/connect";
import { reconnectDelay, type RealtimeClient } from "./client.js";
import { positionOf, toHistoryMessage } from "./convert.js";
import { Listeners } from "./listeners.js";
import type { HistoryMessage, Listener, Position, PublishOptions, PublishResult, RealtimePayload, SubscribeStatus } from "./types.js";

/**
 * One topic as the app sees it: listeners by event name (`'*'` for all),
 * a subscription that survives reconnects, publish and history.
 */
export class Channel {
  private readonly listeners = new Listeners();
  /** True between subscribe() and unsubscribe(). */
  private wanted = false;
  private joined = false;
  private joining: Promise<void> | undefined;
  private onStatus: ((status: SubscribeStatus, error?: ConnectError) => void) | undefined;
  /** The newest persisted position seen on this channel. */
  private position: Position | undefined;
  private joinDataValue: unknown;
  /** A join the server could not serve for now (UNAVAILABLE) is tried again on this timer. */
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retries = 0;

  constructor(
    private readonly client: RealtimeClient,
    readonly topic: string,
  ) {}

  /** True while the server delivers this topic to us. */
  get subscribed(): boolean {
    return this.joined;
  }

  /** What the server's join hook attached to this subscription, if anything. */
  get joinData(): unknown {
    return this.joinDataValue;
  }

  /** The newest persisted position received on this channel. */
  get lastPosition(): Position | undefined {
    return this.position;
  }

  on<T = any>(event: string, callback: Listener<T>): this {
    this.listeners.add(event, callback as Listener);
    return this;
  }

  off<T = any>(event: string, callback: Listener<T>): this {
    this.listeners.remove(event, callback as Listener);
    return this;
  }

  /**
   * Starts receiving this topic (connecting if needed). Returns the channel
   * at once; `callback` (or `ready()`) tells how it went.
   */
  subscribe(callback?: (status: SubscribeStatus, error?: ConnectError) => void): this {
    if (callback) this.onStatus = callback;
    if (this.wanted) return this;
    this.wanted = true;
    this.join();
    return this;
  }

  /** Resolves when the subscription is active; rejects with the server's error. */
  ready(): Promise<void> {
    if (!this.wanted) return Promise.reject(new ConnectError(`channel ${this.topic} is not subscribed: call subscribe() first`, Code.FailedPrecondition));
    return this.joining ?? Promise.resolve();
  }

  /** Stops receiving this topic and removes every listener. */
  async unsubscribe(): Promise<void> {
    const wasJoined = this.joined || this.joining !== undefined;
    this.cancelRetry();
    this.wanted = false;
    this.joined = false;
    this.joining = undefined;
    this.listeners.clear();
    if (wasJoined && this.client.status === "connected") {
      await this.client.command("unsubscribe", { topic: this.topic });
    }
    this.onStatus?.("CLOSED");
  }

  async publish(event: string, data: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    const reply = await this.client.command("publish", {
      topic: this.topic,
      event,
      data: data === undefined ? "" : JSON.stringify(data),
      persist: options.persist ?? false,
      id: options.id ?? "",
    });
    const result: PublishResult = { id: reply.id, timestamp: Number(reply.timestamp) };
    const position = positionOf(reply.position);
    if (position) result.position = position;
    return result;
  }

  /**
   * Persisted messages, newest first. `before` is a created_at time (ms,
   * exclusive): pass the last message's created_at to page back.
   */
  async getHistory(limit = 50, before?: number): Promise<HistoryMessage[]> {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new ConnectError(`limit ${limit} is out of range: use an integer from 1 to 1000`, Code.InvalidArgument);
    }
    if (before !== undefined && (!Number.isInteger(before) || before < 0)) {
      throw new ConnectError(`before must be a created_at time in milliseconds, not ${before}`, Code.InvalidArgument);
    }
    const reply = await this.client.command("getHistory", {
      topic: this.topic,
      limit,
      before: BigInt(before ?? 0),
    });
    return reply.messages.map(toHistoryMessage);
  }

  /** @internal */
  dispatch(payload: RealtimePayload): void {
    const p = payload.position;
    if (p) {
      // A replay can overlap what already arrived: each persisted message once.
      if (this.position && p.epoch === this.position.epoch && p.seq <= this.position.seq) return;
      this.position = p;
    }
    this.listeners.dispatch(payload);
    // The server dropped messages for us (we read too slowly): catch up from our position.
    if (payload.type === "system" && payload.event === "system:lagged" && this.wanted && this.joined) this.resync();
  }

  /** @internal The session dropped: the subscription is gone until it is restored. */
  connectionLost(): void {
    this.cancelRetry();
    this.joined = false;
    this.joining = undefined;
  }

  /** @internal A new session is up: restore the subscription. */
  connectionRestored(): void {
    if (this.wanted && !this.joined && !this.joining) this.join();
  }

  private retryLater(): void {
    this.cancelRetry();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.wanted && !this.joined && !this.joining) this.join();
    }, reconnectDelay(this.retries++));
  }

  private cancelRetry(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private resync(): void {
    this.joined = false;
    this.join();
  }

  private join(): void {
    const attempt = this.client
      .command("subscribe", { topic: this.topic, since: this.position && { seq: BigInt(this.position.seq), epoch: this.position.epoch } })
      .then(
        (reply) => {
          if (this.joining !== attempt) return;
          this.joinDataValue = reply.joinData === "" ? undefined : JSON.parse(reply.joinData);
          // Where this subscription starts, even before any message (seq 0): a
          // later rejoin asks for everything after it, so a quiet channel
          // loses nothing persisted while the connection is down.
          if (!this.position && reply.position) this.position = { seq: Number(reply.position.seq), epoch: reply.position.epoch };
          this.joining = undefined;
          this.joined = true;
          this.retries = 0;
          this.onStatus?.("SUBSCRIBED");
        },
        (error: unknown) => {
          const e = ConnectError.from(error);
          if (this.joining !== attempt) return;
          this.joining = undefined;
          // A refusal is final; a lost session is retried when it comes back;
          // a server that cannot serve the topic right now (its message
          // broker is away) is asked again, backing off, on the same session.
          if (e.code !== Code.Unavailable && e.code !== Code.Canceled) this.wanted = false;
          else if (e.code === Code.Unavailable && this.client.status === "connected") this.retryLater();
          this.onStatus?.("CHANNEL_ERROR", e);
          throw e;
        },
      );
    this.joining = attempt;
    attempt.catch(() => {}); // reported through the status callback and ready()
  }
}

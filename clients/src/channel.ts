import { Code, ConnectError } from "@connectrpc/connect";
import { reconnectDelay, type RealtimeClient } from "./client.js";
import { HistoryGapError, SubscriptionRefusedError } from "./errors.js";
import { positionOf, toHistoryMessage } from "./convert.js";
import { Listeners } from "./listeners.js";
import { PresenceState, toPresenceEntry, type PresenceEntry } from "./presence.js";
import { StreamAssembler, type StreamState, type ViewerStream } from "./streams.js";
import { openSessionStream, type StreamOptions, type StreamWriter } from "./stream-writer.js";
import type { ChannelState, EventMap, HistoryMessage, Listener, Position, PublishOptions, PublishResult, RealtimePayload, SubscribeStatus } from "./types.js";

/** Answers that say the subscription will not be served, however often it is asked for. */
const REFUSALS = new Set([Code.InvalidArgument, Code.PermissionDenied, Code.Unauthenticated, Code.ResourceExhausted, Code.FailedPrecondition, Code.Unimplemented, Code.OutOfRange, Code.AlreadyExists]);

/**
 * One topic as the app sees it: listeners by event name (`'*'` for all),
 * a subscription that survives reconnects, publish and history.
 */
/** Any event name on an untyped channel; on a typed one, none (its events are checked against its map). */
type AnyEvent<Events> = string extends keyof Events ? string : never;

export class Channel<Events extends EventMap = Record<string, any>> {
  private readonly listeners: Listeners;
  /** True between subscribe() and unsubscribe(). */
  private wanted = false;
  private joined = false;
  private joining: Promise<void> | undefined;
  private onStatus: ((status: SubscribeStatus, error?: ConnectError) => void) | undefined;
  /** The newest persisted position seen on this channel. */
  private position: Position | undefined;
  private joinDataValue: unknown;
  /** Why the server refused the last subscribe, for ready() called after the fact. */
  private refusal: ConnectError | undefined;
  /** A join the server could not serve for now (UNAVAILABLE) is tried again on this timer. */
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retries = 0;
  /** Who is present, as the server last said. */
  private readonly presenceState = new PresenceState();
  /** Token streams on this topic, put together from their payloads; who hears of them. */
  private readonly streamWatchers = new Set<(state: StreamState) => void>();
  private readonly streamReaders = new Set<(stream: ViewerStream) => void>();
  private readonly streamParts = new StreamAssembler(
    (state) => {
      for (const watcher of this.streamWatchers) watcher(state);
    },
    (stream) => {
      for (const reader of this.streamReaders) reader(stream);
    },
  );
  /** The state this client tracks here (JSON text), while tracking. */
  private tracked: string | undefined;
  /** The state the server last accepted (what a refused update falls back to). */
  private acknowledged: string | undefined;
  /** The presence id the server gave our member: named on reconnect to restore it. */
  private memberId: string | undefined;
  /** The track waiting for the subscription (a track before subscribe is announced once subscribed). */
  private pendingTrack: { resolve(): void; reject(error: unknown): void } | undefined;

  constructor(
    private readonly client: RealtimeClient,
    readonly topic: string,
    /** Table topics: the rows this channel receives (empty: all). */
    readonly filter = "",
  ) {
    this.listeners = new Listeners((error, event) => client.report(error, `listener for "${event}" on ${topic}`));
  }

  /** True while the server delivers this topic to us. */
  get subscribed(): boolean {
    return this.joined;
  }

  /**
   * Where the subscription stands: `closed` (never subscribed, or
   * unsubscribed), `joining` (asked for, or being restored after a lost
   * connection), `joined`, or `errored` (the server refused it; see
   * ready()'s error).
   */
  get state(): ChannelState {
    if (this.joined) return "joined";
    if (this.wanted) return "joining";
    return this.refusal ? "errored" : "closed";
  }

  /** What the server's join hook attached to this subscription, if anything. */
  get joinData(): unknown {
    return this.joinDataValue;
  }

  /** The newest persisted position received on this channel. */
  get lastPosition(): Position | undefined {
    return this.position;
  }

  /** Calls `callback` with every payload of `event` (`'*'`: every event) on this topic. */
  on<E extends keyof Events & string>(event: E, callback: Listener<Events[E]>): this;
  on<T = any>(event: AnyEvent<Events>, callback: Listener<T>): this;
  /** On a typed channel, events outside its map (presence:…, system:…). */
  on<E extends string, T = any>(event: E & Exclude<E, keyof Events>, callback: Listener<T>): this;
  on(event: string, callback: Listener): this {
    this.listeners.add(event, callback);
    return this;
  }

  /**
   * Calls `callback` with a token stream's state whenever it changes: on
   * its start, every chunk (`text` is all of it so far) and its end.
   */
  onStream<Meta = any>(callback: (stream: StreamState<Meta>) => void): this {
    this.streamWatchers.add(callback);
    return this;
  }

  offStream(callback: (stream: StreamState) => void): this {
    this.streamWatchers.delete(callback);
    return this;
  }

  /** Token streams under way on this topic now. */
  get activeStreams(): StreamState[] {
    return this.streamParts.current();
  }

  /**
   * Each token stream that starts from now on (or is caught up with on
   * subscribe), as an async iterable of its text chunks:
   * `for await (const stream of channel.streams()) for await (const chunk of stream) …`.
   * Leaving the loop stops listening.
   */
  streams<Meta = any>(): AsyncIterable<ViewerStream<Meta>> {
    const readers = this.streamReaders;
    return {
      [Symbol.asyncIterator]() {
        const queue: ViewerStream[] = [];
        let wake: (() => void) | undefined;
        let closed = false;
        const reader = (stream: ViewerStream) => {
          queue.push(stream);
          wake?.();
        };
        readers.add(reader);
        return {
          async next(): Promise<IteratorResult<ViewerStream<Meta>>> {
            while (queue.length === 0) {
              if (closed) return { value: undefined, done: true };
              await new Promise<void>((resolve) => (wake = resolve));
            }
            wake = undefined;
            return { value: queue.shift()!, done: false };
          },
          async return(): Promise<IteratorResult<ViewerStream<Meta>>> {
            readers.delete(reader);
            closed = true;
            wake?.();
            return { value: undefined, done: true };
          },
        };
      },
    };
  }

  /**
   * Streams a response into this topic from this client (peer to peer;
   * needs the publish permission): write() chunks, then end(). Each chunk
   * counts against the publish rate; text written while a write is on its
   * way goes out together. If the connection drops, the server ends the
   * stream with an error and further writes fail.
   */
  stream(event = "stream", options: Omit<StreamOptions, "event"> = {}): StreamWriter {
    return openSessionStream(this.topic, { ...options, event }, (request) => this.client.command("streamWrite", request));
  }

  off<E extends keyof Events & string>(event: E, callback: Listener<Events[E]>): this;
  off<T = any>(event: AnyEvent<Events>, callback: Listener<T>): this;
  off<E extends string, T = any>(event: E & Exclude<E, keyof Events>, callback: Listener<T>): this;
  off(event: string, callback: Listener): this {
    this.listeners.remove(event, callback);
    return this;
  }

  /**
   * Starts receiving this topic (connecting if needed). Returns the channel
   * at once; `callback` (or `ready()`) tells how it went. Without a
   * callback, a refusal is reported through the client's onError.
   */
  subscribe(callback?: (status: SubscribeStatus, error?: ConnectError) => void): this {
    if (callback) this.onStatus = callback;
    if (this.wanted) return this;
    this.wanted = true;
    this.join();
    return this;
  }

  /** @internal Whether subscribe() was called and not undone (by unsubscribe() or a final refusal). */
  get wantsSubscription(): boolean {
    return this.wanted;
  }

  /** Resolves when the subscription is active; rejects with the server's error. */
  ready(): Promise<void> {
    if (!this.wanted) return Promise.reject(this.refusal ?? new ConnectError(`channel ${this.topic} is not subscribed: call subscribe() first`, Code.FailedPrecondition));
    return this.joining ?? Promise.resolve();
  }

  /**
   * Announces this client on the topic with `state` (any JSON value),
   * under its authenticated user id; called again, updates the state in
   * place (subscribers see one `presence:update`). Before subscribe() it is
   * announced once subscribed. After a reconnect the state is restored by
   * itself (within the server's grace period, unseen by the others).
   */
  track(state: unknown): Promise<void> {
    let text: string;
    try {
      text = JSON.stringify(state ?? null);
    } catch (error) {
      return this.client.guard(Promise.reject(new ConnectError(`presence state is not JSON (${(error as Error).message})`, Code.InvalidArgument)), `track on ${this.topic}`);
    }
    this.tracked = text;
    this.pendingTrack?.resolve(); // superseded: the newest state is the one announced
    const announced = this.joined ? this.announce() : new Promise<void>((resolve, reject) => (this.pendingTrack = { resolve, reject }));
    // Refused (too large, not permitted, too fast): what the server holds is still the state before.
    const settled = announced.catch((error: unknown) => {
      if (this.tracked === text) this.tracked = this.acknowledged;
      throw error;
    });
    return this.client.guard(settled, `track on ${this.topic}`);
  }

  /** Leaves this topic's presence (subscribers see `presence:leave`). */
  untrack(): Promise<void> {
    const wasTracked = this.tracked !== undefined;
    this.tracked = undefined;
    this.acknowledged = undefined;
    this.memberId = undefined;
    this.pendingTrack?.resolve();
    this.pendingTrack = undefined;
    if (!wasTracked || !this.joined) return Promise.resolve();
    return this.client.guard(this.client.command("untrack", { topic: this.topic }).then(() => undefined), `untrack on ${this.topic}`);
  }

  /** Who is present on this topic, grouped by user id: every member (connection) of each user with its state. */
  presence<T = any>(): Record<string, Array<PresenceEntry<T>>> {
    return this.presenceState.byUser();
  }

  /** Asks the server who is present on this topic now (no subscription needed; needs the subscribe permission). */
  getPresence(): Promise<Array<PresenceEntry & { joinedAt: number; updatedAt: number }>> {
    const members = this.client.command("getPresence", { topic: this.topic, groupByUser: false }).then((reply) => reply.members.map(toPresenceEntry));
    return this.client.guard(members, `getPresence of ${this.topic}`);
  }

  /** How many connections and distinct users are present, without their states (cheap for large rooms). */
  presenceStats(): Promise<{ connections: number; users: number }> {
    const stats = this.client.command("getPresenceStats", { topic: this.topic }).then((reply) => ({ connections: reply.connections, users: reply.users }));
    return this.client.guard(stats, `presenceStats of ${this.topic}`);
  }

  private async announce(): Promise<void> {
    const state = this.tracked;
    if (state === undefined) return;
    const reply = await this.client.command("track", { topic: this.topic, state, restore: this.memberId ?? "" });
    if (this.tracked === undefined) return;
    this.memberId = reply.member?.connectionId;
    this.acknowledged = state;
  }

  /** Stops receiving this topic and removes every listener. */
  unsubscribe(): Promise<void> {
    return this.client.guard(this.leave(), `unsubscribe from ${this.topic}`);
  }

  private async leave(): Promise<void> {
    // Everything local changes before any answer comes back, so a subscribe() right after (a React
    // StrictMode remount) starts from a clean channel, and its commands go after these.
    const untracked = this.tracked !== undefined ? this.untrack().catch(() => {}) : undefined;
    this.presenceState.clear();
    const wasJoined = this.joined || this.joining !== undefined;
    this.cancelRetry();
    this.wanted = false;
    this.joined = false;
    this.joining = undefined;
    this.listeners.clear();
    if (wasJoined && this.client.status === "connected") {
      await this.client.command("unsubscribe", { topic: this.topic });
    }
    await untracked;
    if (!this.wanted) this.notify("CLOSED");
  }

  /** Tells the subscribe callback; without one, a failure goes to the client's onError. */
  private notify(status: SubscribeStatus, error?: ConnectError): void {
    if (this.onStatus) {
      try {
        this.onStatus(status, error);
      } catch (thrown) {
        this.client.report(thrown, `subscribe callback of ${this.topic}`);
      }
    } else if (error) {
      this.client.report(error, `subscribe to ${this.topic}`);
    }
  }

  /**
   * Publishes to this topic. A payload larger than the server accepts
   * (its Welcome says how large) is refused here with RESOURCE_EXHAUSTED,
   * before anything is sent.
   */
  publish<E extends keyof Events & string>(event: E, data: Events[E], options?: PublishOptions): Promise<PublishResult>;
  publish(event: AnyEvent<Events>, data: unknown, options?: PublishOptions): Promise<PublishResult>;
  publish<E extends string>(event: E & Exclude<E, keyof Events>, data: unknown, options?: PublishOptions): Promise<PublishResult>;
  publish(event: string, data: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    return this.client.guard(this.send(event, data, options), `publish to ${this.topic}`);
  }

  private async send(event: string, data: unknown, options: PublishOptions): Promise<PublishResult> {
    const text = data === undefined ? "" : JSON.stringify(data);
    const reply = await this.client.command(
      "publish",
      { topic: this.topic, event, data: text, persist: options.persist ?? false, id: options.id ?? "" },
      (welcome) => {
        const max = welcome.maxPayloadBytes;
        // A UTF-16 unit is at most 3 bytes of UTF-8: only a text that may be over the limit is measured.
        if (max > 0 && text.length * 3 > max) {
          const bytes = utf8Length(text);
          if (bytes > max) throw new ConnectError(`data is ${bytes} bytes; the server accepts at most ${max}: send less, or split it`, Code.ResourceExhausted);
        }
      },
    );
    const result: PublishResult = { id: reply.id, timestamp: Number(reply.timestamp) };
    const position = positionOf(reply.position);
    if (position) result.position = position;
    return result;
  }

  /**
   * Persisted messages, newest first. `before` is a created_at time (ms,
   * exclusive): pass the last message's created_at to page back.
   */
  getHistory(limit = 50, before?: number): Promise<Array<HistoryMessage<Events[keyof Events & string]>>> {
    return this.client.guard(this.history(limit, before), `getHistory of ${this.topic}`);
  }

  private async history(limit: number, before: number | undefined): Promise<HistoryMessage[]> {
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
    if (payload.type === "presence") {
      for (const gone of this.presenceState.apply(payload)) {
        this.listeners.dispatch({ type: "presence", topic: this.topic, event: "presence:leave", data: gone.data, userId: gone.userId, connectionId: gone.connectionId, timestamp: payload.timestamp, id: "" });
      }
    }
    this.listeners.dispatch(payload);
    if (payload.type === "stream") this.streamParts.apply(payload);
    if (payload.type === "system") {
      // The server dropped messages for us (we read too slowly): catch up from our position.
      if (payload.event === "system:lagged" && this.wanted && this.joined) this.resync();
      if (payload.event === "system:history_gap" && !this.listeners.has("system:history_gap")) this.client.report(gapError(this.topic, payload.data), `recovery of ${this.topic}`);
    }
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
      .command("subscribe", {
        topic: this.topic,
        filter: this.filter,
        since: this.position && { seq: BigInt(this.position.seq), epoch: this.position.epoch },
        // Even an empty room's sync, when it tells us something: members we knew are gone, or the app listens for it.
        presenceSync: this.presenceState.size > 0 || this.listeners.has("presence:sync"),
      })
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
          this.refusal = undefined;
          this.notify("SUBSCRIBED");
          // Presence tracked before subscribing, or before a reconnect, is announced (or restored) now.
          if (this.tracked !== undefined) {
            const waiting = this.pendingTrack;
            this.pendingTrack = undefined;
            this.announce().then(
              () => waiting?.resolve(),
              (error: unknown) => (waiting ? waiting.reject(error) : this.client.report(error, `track on ${this.topic}`)),
            );
          }
        },
        (error: unknown) => {
          const e = ConnectError.from(error);
          if (this.joining !== attempt) return;
          this.joining = undefined;
          // A refusal is final; anything else (a session lost midway, a server
          // whose message broker is away) is asked again: when the session
          // comes back, or backing off on the same session.
          if (REFUSALS.has(e.code)) {
            const refused = new SubscriptionRefusedError(this.topic, e);
            this.wanted = false;
            this.refusal = refused;
            this.notify("CHANNEL_ERROR", refused);
            throw refused;
          }
          if (this.client.status === "connected") this.retryLater();
          this.notify("CHANNEL_ERROR", e);
          throw e;
        },
      );
    this.joining = attempt;
    attempt.catch(() => {}); // reported through the status callback and ready()
  }
}

/** The error for a `system:history_gap` notice (its data: reason, missed_from, missed_to). */
function gapError(topic: string, data: unknown): HistoryGapError {
  const notice = (data ?? {}) as { reason?: unknown; missed_from?: unknown; missed_to?: unknown };
  const position = (v: unknown) => (typeof v === "number" ? v : undefined);
  return new HistoryGapError(topic, typeof notice.reason === "string" ? notice.reason : "unknown", position(notice.missed_from), position(notice.missed_to));
}

/** The length of `text` in UTF-8, without encoding it. */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit < 0xdc00 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4; // a surrogate pair: one code point
      i++;
    } else bytes += 3; // the rest of the BMP, and a lone surrogate (encoded as U+FFFD)
  }
  return bytes;
}

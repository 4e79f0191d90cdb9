import { Code, ConnectError } from "@connectrpc/connect";
import type { Welcome } from "../../gen/chorus/v1/realtime_pb.js";
import { Channel } from "./channel.js";
import { NotConnectedError } from "./errors.js";
import type { InboundFrame } from "./frames.js";
import { toPayload } from "./convert.js";
import { CommandDeadline, unsent, type CommandCase, type CommandInit, type CommandResult, type SessionConnection, type SessionTransport } from "./session.js";
import { Listeners } from "./listeners.js";
import { delayUntil, MAX_TIMER_DELAY, unref } from "./timers.js";
import type { ConnectionStatus, EventMap, Listener, RealtimePayload } from "./types.js";

export type StatusListener = (status: ConnectionStatus, error?: ConnectError) => void;
/** Hears every failure the SDK reports: a refused command, a listener that threw, a token that could not be had. */
export type ErrorListener = (error: ConnectError, context: string) => void;

export interface ChannelOptions {
  /** Table topics: only rows matching this filter (`column=op.value`, joined by `&`; ops eq, neq, lt, lte, gt, gte, in, is). */
  filter?: string;
}

export interface RealtimeClientOptions {
  /** The Chorus server, e.g. http://localhost:8080. */
  url: string;
  /** A user token (JWT); sent as `Authorization: Bearer <token>`. */
  token?: string;
  /**
   * Returns a current token. Called before every connect and reconnect, and
   * again shortly before the token in use expires (a JWT's `exp`).
   */
  getToken?: () => string | Promise<string>;
  /** Reconnect automatically after a lost connection (default true). */
  reconnect?: boolean;
  /** Give up on a session that has not been welcomed within this time, and retry (default 10 000 ms). */
  connectTimeoutMs?: number;
  /**
   * How long a command (publish, subscribe, getHistory …) may take,
   * waiting for a session included (default 10 000 ms). A connection whose
   * command times out is taken for dead and replaced.
   */
  commandTimeoutMs?: number;
  /** Hears every failure the SDK reports (also settable with onError()); without one, failures go to console.error. */
  onError?: ErrorListener;
}

/** Tries per heartbeat before a ping is left to the next one. */
const PING_TRIES = 3;

/**
 * Backoff before reconnect attempt n (0-based): 1 s, 2 s, 4 s … capped at
 * 30 s, each spread over ±50 % so that clients dropped together do not
 * return together.
 */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(30_000, 1000 * 2 ** attempt);
  return Math.round(base * (0.5 + random()));
}

/** A JWT's expiry in ms since the epoch, read without verifying (the server verifies). */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const b64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4))) as { exp?: unknown };
    return typeof claims.exp === "number" ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** A connection that lasted this long resets the backoff. */
const STABLE_MS = 10_000;
/** Failures no retry can mend: the client stops and says why. */
const FINAL = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.Unimplemented, Code.InvalidArgument, Code.FailedPrecondition]);

interface Waiter {
  resolve(): void;
  reject(error: ConnectError): void;
}

/**
 * The app's handle on Chorus: one session, any number of channels.
 * Transport-agnostic: the node and browser entry points bind a transport.
 *
 * It never hides a failure and never brings its host down: connect()
 * rejects when the first attempt fails (and keeps trying in the background
 * where that can help); every command has a deadline; a listener that
 * throws, or a promise nobody awaited, ends up in onError, never as an
 * uncaught exception.
 */
export class RealtimeClient {
  private statusValue: ConnectionStatus = "idle";
  private readonly statusListeners = new Set<StatusListener>();
  private readonly errorListeners = new Set<ErrorListener>();
  private readonly channels = new Map<string, Channel>();
  private connection: SessionConnection | undefined;
  private welcome: Welcome | undefined;
  private token: string | undefined;
  /** True between connect() and disconnect(): the client keeps a session open. */
  private wanted = false;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private opening = false;
  private connectedAt = 0;
  /** connect() callers: settled by the attempt under way (welcomed, or failed). */
  private connectWaiters: Waiter[] = [];
  /** Commands waiting for a session: settled by a welcome, by the client giving up, or by their own deadline. */
  private readyWaiters = new Set<Waiter>();
  /** Listeners for messages sent to this user (SendToUser). */
  private readonly direct = new Listeners((error, event) => this.report(error, `listener for "${event}" (messages to this user)`));
  private lastFrameAt = 0;
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly options: RealtimeClientOptions,
    private readonly transport: SessionTransport,
  ) {
    this.token = options.token;
    if (options.onError) this.errorListeners.add(options.onError);
  }

  get status(): ConnectionStatus {
    return this.statusValue;
  }

  /** The authenticated user id of the current session. */
  get userId(): string | undefined {
    return this.welcome?.userId;
  }

  /** The public id of the current connection (payload.connectionId of what it publishes). */
  get connectionId(): string | undefined {
    return this.welcome?.connectionId;
  }

  /**
   * Calls `callback` on every status change; `reconnecting` and an
   * unrequested `disconnected` come with the error that caused them.
   */
  onStatusChange(callback: StatusListener): () => void {
    this.statusListeners.add(callback);
    return () => this.statusListeners.delete(callback);
  }

  /**
   * The status changes from now on, as an async iterable:
   * `for await (const status of realtime.statuses()) …`. Leaving the loop
   * stops listening; changes are queued while the loop body runs.
   */
  statuses(): AsyncIterable<ConnectionStatus> {
    return {
      [Symbol.asyncIterator]: () => {
        const queued: ConnectionStatus[] = [];
        let wake: (() => void) | undefined;
        const stop = this.onStatusChange((status) => {
          queued.push(status);
          wake?.();
        });
        return {
          next: async (): Promise<IteratorResult<ConnectionStatus>> => {
            while (queued.length === 0) await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            return { value: queued.shift()!, done: false };
          },
          return: async (): Promise<IteratorResult<ConnectionStatus>> => {
            stop();
            wake?.();
            return { value: undefined, done: true };
          },
        };
      },
    };
  }

  /** Calls `callback` with every failure the SDK reports (then nothing goes to console.error). */
  onError(callback: ErrorListener): () => void {
    this.errorListeners.add(callback);
    return () => this.errorListeners.delete(callback);
  }

  /** Listens for messages a back end sends to this user (SendToUser); `'*'` for all. */
  on<T = any>(event: string, callback: Listener<T>): this {
    this.direct.add(event, callback as Listener);
    return this;
  }

  off<T = any>(event: string, callback: Listener<T>): this {
    this.direct.remove(event, callback as Listener);
    return this;
  }

  /**
   * The channel for a topic (one per topic per client: always the same
   * object). On a table topic, `filter` asks the server for the matching
   * rows only (`status=eq.shipped&list_id=in.(1,2)`). `Events` types its
   * events: `channel<{ message: ChatMessage }>("chat/general")`, or
   * `channel<TableEvents<Order>>("orders")`.
   */
  channel<Events extends EventMap = Record<string, any>>(topic: string, options: ChannelOptions = {}): Channel<Events> {
    let channel = this.channels.get(topic);
    if (channel && options.filter !== undefined && options.filter !== channel.filter) {
      if (channel.wantsSubscription) {
        throw new ConnectError(`channel "${topic}" is subscribed with filter "${channel.filter}"; unsubscribe it before asking for another filter`, Code.FailedPrecondition);
      }
      channel = undefined; // not subscribed: replaced by one with the new filter
    }
    if (!channel) this.channels.set(topic, (channel = new Channel(this, topic, options.filter ?? "")));
    return channel as Channel<Events>; // the event map is the caller's claim about the topic, for types only
  }

  /**
   * Opens the session (if it is not open) and resolves once the server
   * welcomed it. Rejects with the reason when this attempt fails; the
   * client goes on retrying in the background unless the failure is final
   * (a refused token, a wrong URL).
   */
  connect(): Promise<void> {
    this.wanted = true;
    if (this.statusValue === "connected") return Promise.resolve();
    const ready = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    this.ensureOpening();
    return this.guard(ready, "connect");
  }

  /**
   * Closes the session; nothing is retried, no timer or socket is left
   * behind. Presence this client tracks leaves at once (a goodbye sent
   * first, for at most a second), rather than after the grace period a
   * dropped connection gets.
   */
  disconnect(): void {
    this.wanted = false;
    this.watchNetwork(false);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.stopTimers();
    const connection = this.connection;
    const close = () => {
      connection?.close();
      // Unless the app connected again meanwhile (the transport is shared).
      if (!this.wanted) this.transport.dispose();
    };
    // A goodbye first (waited for at most a second), so the server ends the session cleanly
    // rather than as a lost connection: presence leaves at once, without the grace period.
    if (connection && this.statusValue === "connected") void connection.command("endSession", {}, new CommandDeadline(1000, "endSession")).then(close, close);
    else close();
    this.connection = undefined;
    this.welcome = undefined;
    for (const channel of this.channels.values()) channel.connectionLost();
    this.settle(new ConnectError("disconnect() was called", Code.Canceled));
    this.setStatus("disconnected");
  }

  /**
   * Replaces the token on the live session, and for every later reconnect.
   * A token the server refuses changes nothing: the previous one stays.
   */
  setToken(token: string): Promise<void> {
    return this.guard(this.replaceToken(token), "setToken");
  }

  /** @internal Runs a command once a session is up (connecting on demand), within the command deadline. */
  async command<K extends CommandCase>(kind: K, value: CommandInit<K>, check?: (welcome: Welcome) => void): Promise<CommandResult<K>> {
    const timeoutMs = this.options.commandTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.statusValue !== "connected") await this.ready(deadline, kind);
      const connection = this.connection!;
      check?.(this.welcome!);
      const expiry = new CommandDeadline(deadline - Date.now(), kind, timeoutMs);
      try {
        return await connection.command(kind, value, expiry);
      } catch (error) {
        // Not sent before its session ended: it goes to the next session, within its deadline.
        if (unsent(error) && Date.now() < deadline && this.wanted) continue;
        // No answer in time: the connection is taken for dead (half-open, frozen) and replaced.
        if (expiry.fired && this.connection === connection) this.giveUp(connection, `a ${kind} command got no answer within ${timeoutMs} ms`);
        throw ConnectError.from(error);
      }
    }
  }

  /** @internal Reports a failure to the onError listeners (console.error without any). */
  report(error: unknown, context: string): void {
    const e = ConnectError.from(error);
    if (this.errorListeners.size === 0) {
      console.error(`chorus: ${context}: ${e.rawMessage} (${Code[e.code]})`);
      return;
    }
    for (const listener of [...this.errorListeners]) {
      try {
        listener(e, context);
      } catch (thrown) {
        console.error(`chorus: an onError listener threw while reporting ${context}:`, thrown);
      }
    }
  }

  /**
   * @internal Returns `promise` as it is (so callers who await it see its
   * failure), having also handed any failure to onError: a caller who does
   * not await never gets an unhandled rejection.
   */
  guard<T>(promise: Promise<T>, context: string): Promise<T> {
    promise.catch((error: unknown) => this.report(error, context));
    return promise;
  }

  /** @internal */
  forgetChannel(topic: string): void {
    this.channels.delete(topic);
  }

  private async replaceToken(token: string): Promise<void> {
    if (this.statusValue === "connected") await this.command("refreshToken", { token });
    this.token = token;
    this.scheduleRefresh();
  }

  /** Resolves once a session is up; rejects at `deadline`, or when the client gives up. */
  private ready(deadline: number, kind: string): Promise<void> {
    this.wanted = true;
    this.ensureOpening();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
      // A deadline past what a timer takes (a timeout of weeks, or Infinity) is not watched.
      const timer =
        deadline - Date.now() <= MAX_TIMER_DELAY
          ? setTimeout(() => {
              this.readyWaiters.delete(waiter);
              reject(new NotConnectedError(`${kind}: no session with the server within ${this.options.commandTimeoutMs ?? 10_000} ms (status: ${this.statusValue})`));
            }, delayUntil(deadline))
          : undefined;
      unref(timer);
      this.readyWaiters.add(waiter);
    });
  }

  private ensureOpening(): void {
    if (!this.connection && this.reconnectTimer === undefined && !this.opening) this.open();
  }

  private open(): void {
    this.watchNetwork(true);
    this.setStatus(this.attempt > 0 || this.connectedAt > 0 ? "reconnecting" : "connecting");
    this.opening = true;
    const start = (token: string | undefined) => {
      this.opening = false;
      if (!this.wanted || this.connection) return;
      if (token !== this.token) this.token = token;
      const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      const connection = this.transport.open(headers);
      this.connection = connection;
      this.armConnectTimeout(connection);
      void this.read(connection);
    };
    if (!this.options.getToken) return start(this.token);
    Promise.resolve()
      .then(() => this.options.getToken!())
      .then(start, (error: unknown) => {
        this.opening = false;
        // No token, no session: say so, and try again on the usual schedule.
        this.report(error, "getToken");
        if (this.wanted) this.lost(new ConnectError(`getToken failed: ${ConnectError.from(error).rawMessage}`, Code.Unauthenticated), true);
      });
  }

  private async read(connection: SessionConnection): Promise<void> {
    let failure: ConnectError | undefined;
    let mayReconnect = true;
    try {
      for await (const frames of connection.frames) {
        this.lastFrameAt = Date.now(); // once per server message: the clock is read for the watchdog, not per payload
        for (const frame of frames) {
          if (this.connection !== connection) return;
          mayReconnect = this.handle(connection, frame) && mayReconnect;
        }
      }
    } catch (error) {
      failure = ConnectError.from(error);
      if (FINAL.has(failure.code)) mayReconnect = false;
    }
    if (this.connection !== connection) return; // replaced or disconnected on purpose
    this.connection = undefined;
    this.lost(failure ?? new ConnectError("the server ended the session", Code.Unavailable), mayReconnect);
  }

  private lost(failure: ConnectError, mayReconnect: boolean): void {
    this.welcome = undefined;
    this.stopTimers();
    for (const channel of this.channels.values()) channel.connectionLost();
    // Whoever awaits this attempt hears how it ended, whether or not the client tries again.
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.reject(failure);
    if (this.wanted && mayReconnect && this.options.reconnect !== false) {
      this.scheduleReconnect(failure);
    } else {
      this.wanted = false;
      this.settle(failure);
      this.setStatus("disconnected", failure);
    }
  }

  /** Returns false when the server said not to reconnect. */
  private handle(connection: SessionConnection, frame: InboundFrame): boolean {
    switch (frame.kind.case) {
      case "welcome": {
        this.welcome = frame.kind.value;
        this.connectedAt = Date.now();
        clearTimeout(this.connectTimer);
        this.watch(connection, frame.kind.value.heartbeatIntervalMs);
        this.scheduleRefresh();
        this.setStatus("connected");
        this.settle(undefined);
        for (const channel of this.channels.values()) channel.connectionRestored();
        return true;
      }
      case "decodedPayload":
        this.deliver(frame.kind.value);
        return true;
      case "payload":
        this.deliver(toPayload(frame.kind.value));
        return true;
      case "heartbeat":
        this.ping(connection, PING_TRIES);
        return true;
      case "disconnect":
        return frame.kind.value.reconnect;
      default:
        return true;
    }
  }

  /**
   * Answers a heartbeat. The server ends a session that has not pinged for
   * two intervals. Over fetch a ping can land on a pooled connection that
   * went half-open (the runtime reuses idle ones): it is abandoned after a
   * quarter of an interval, which makes the runtime let go of that
   * connection, and sent again, so one dead socket in the pool does not
   * cost the session.
   */
  private ping(connection: SessionConnection, tries: number): void {
    const intervalMs = this.welcome?.heartbeatIntervalMs ?? 0;
    const commandTimeoutMs = this.options.commandTimeoutMs ?? 10_000;
    const deadlineMs = intervalMs > 0 ? Math.min(commandTimeoutMs, Math.max(100, intervalMs / 4)) : commandTimeoutMs;
    connection.command("ping", {}, new CommandDeadline(deadlineMs, "ping")).catch(() => {
      if (tries > 1 && this.connection === connection) this.ping(connection, tries - 1);
    });
  }

  /** A payload to its channel's listeners, or (no topic) to the listeners of messages sent to this user. */
  private deliver(payload: RealtimePayload): void {
    if (payload.topic === "") this.direct.dispatch(payload);
    else this.channels.get(payload.topic)?.dispatch(payload);
  }

  /** Resolves (no error) or rejects every waiter, connect() callers and commands alike. */
  private settle(error: ConnectError | undefined): void {
    const waiters = [...this.connectWaiters, ...this.readyWaiters];
    this.connectWaiters = [];
    this.readyWaiters.clear();
    for (const w of waiters) {
      if (error) w.reject(error);
      else w.resolve();
    }
  }

  private armConnectTimeout(connection: SessionConnection): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (this.connection === connection && !this.welcome) this.giveUp(connection, `no welcome from the server within ${this.options.connectTimeoutMs ?? 10_000} ms`);
    }, this.options.connectTimeoutMs ?? 10_000);
    unref(this.connectTimer);
  }

  /**
   * In a browser, the page hears when the device goes offline and comes
   * back: the session is dropped at once (rather than at the second missed
   * heartbeat: a stream open before may hang, not fail) and reopened as
   * soon as the network returns (rather than after the backoff).
   */
  private watchNetwork(on: boolean): void {
    const events = globalThis as { addEventListener?: (type: string, listener: () => void) => void; removeEventListener?: (type: string, listener: () => void) => void };
    if (typeof events.addEventListener !== "function" || typeof events.removeEventListener !== "function" || on === this.watchingNetwork) return;
    this.watchingNetwork = on;
    const change = on ? events.addEventListener : events.removeEventListener;
    change.call(globalThis, "offline", this.wentOffline);
    change.call(globalThis, "online", this.cameOnline);
  }

  private watchingNetwork = false;

  private readonly wentOffline = (): void => {
    const connection = this.connection;
    if (this.wanted && connection) this.giveUp(connection, "the browser went offline");
  };

  private readonly cameOnline = (): void => {
    if (!this.wanted || this.reconnectTimer === undefined) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.attempt = 0;
    this.open();
  };

  /** A connection found dead without any socket saying so: drop it for good and start over. */
  private giveUp(connection: SessionConnection, why: string): void {
    this.connection = undefined;
    connection.close();
    this.transport.reset();
    this.lost(new ConnectError(why, Code.Unavailable), true);
  }

  /**
   * The server sends something at least every heartbeat interval; silence
   * for two means the connection is dead even if no socket said so
   * (a half-open connection): drop it and reconnect.
   */
  private watch(connection: SessionConnection, intervalMs: number): void {
    clearInterval(this.watchdog);
    if (!intervalMs) return;
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastFrameAt <= 2 * intervalMs || this.connection !== connection) return;
      this.giveUp(connection, `no word from the server for ${2 * intervalMs} ms`);
    }, Math.max(50, intervalMs / 2));
    unref(this.watchdog);
  }

  /** Asks getToken for a new token shortly before the current one expires. */
  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    const expiresAt = this.token ? tokenExpiry(this.token) : undefined;
    if (!this.options.getToken || expiresAt === undefined) return;
    const lifetime = expiresAt - Date.now();
    const lead = Math.min(30_000, Math.max(1_000, lifetime / 10));
    this.refreshTimer = setTimeout(() => {
      Promise.resolve()
        .then(() => this.options.getToken!())
        .then((token) => this.replaceToken(token))
        // The session still ends at expiry, with its own error; this says why the refresh did not happen.
        .catch((error: unknown) => this.report(error, "refreshing the token"));
    }, Math.max(0, lifetime - lead));
    unref(this.refreshTimer);
  }

  private stopTimers(): void {
    clearInterval(this.watchdog);
    clearTimeout(this.refreshTimer);
    clearTimeout(this.connectTimer);
    this.watchdog = undefined;
    this.refreshTimer = undefined;
  }

  private scheduleReconnect(error: ConnectError): void {
    if (Date.now() - this.connectedAt > STABLE_MS && this.connectedAt > 0) this.attempt = 0;
    const delay = reconnectDelay(this.attempt++);
    this.setStatus("reconnecting", error);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.wanted) this.open();
    }, delay);
  }

  private setStatus(status: ConnectionStatus, error?: ConnectError): void {
    if (this.statusValue === status) return;
    this.statusValue = status;
    for (const listener of [...this.statusListeners]) {
      try {
        listener(status, error);
      } catch (thrown) {
        this.report(thrown, "status listener");
      }
    }
  }
}

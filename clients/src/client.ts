import { Code, ConnectError } from "@connectrpc/connect";
import type { ServerFrame, Welcome } from "../../gen/chorus/v1/realtime_pb.js";
import { Channel } from "./channel.js";
import { toPayload } from "./convert.js";
import type { CommandCase, CommandInit, CommandResult, SessionConnection, SessionTransport } from "./session.js";
import { Listeners } from "./listeners.js";
import type { ConnectionStatus, Listener } from "./types.js";

/** Timers must not keep a Node process alive on their own; browsers have no unref. */
function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}

export type StatusListener = (status: ConnectionStatus, error?: ConnectError) => void;

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
}

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

/**
 * The app's handle on Chorus: one session, any number of channels.
 * Transport-agnostic: the node and browser entry points bind a transport.
 */
export class RealtimeClient {
  private statusValue: ConnectionStatus = "idle";
  private readonly statusListeners = new Set<StatusListener>();
  private readonly channels = new Map<string, Channel>();
  private connection: SessionConnection | undefined;
  private welcome: Welcome | undefined;
  private token: string | undefined;
  /** True between connect() and disconnect(): the client keeps a session open. */
  private wanted = false;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectedAt = 0;
  /** Waiters for the next Welcome (connect() callers and queued commands). */
  private waiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  /** Listeners for messages sent to this user (SendToUser). */
  private readonly direct = new Listeners();
  private lastFrameAt = 0;
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly options: RealtimeClientOptions,
    private readonly transport: SessionTransport,
  ) {
    this.token = options.token;
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
   * Calls `callback` on every status change; a `disconnected` the client did
   * not ask for comes with the error that ended it (e.g. an expired token).
   */
  onStatusChange(callback: StatusListener): () => void {
    this.statusListeners.add(callback);
    return () => this.statusListeners.delete(callback);
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

  /** The channel for a topic: always the same object for the same topic. */
  channel(topic: string): Channel {
    let channel = this.channels.get(topic);
    if (!channel) this.channels.set(topic, (channel = new Channel(this, topic)));
    return channel;
  }

  /** Opens the session (if it is not open) and resolves once the server welcomed it. */
  connect(): Promise<void> {
    this.wanted = true;
    if (this.statusValue === "connected") return Promise.resolve();
    const ready = this.nextWelcome();
    if (!this.connection && this.reconnectTimer === undefined) this.open();
    return ready;
  }

  /** Closes the session; nothing is retried, no timer or socket is left behind. */
  disconnect(): void {
    this.wanted = false;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.stopTimers();
    this.connection?.close();
    this.connection = undefined;
    this.welcome = undefined;
    this.transport.dispose();
    for (const channel of this.channels.values()) channel.connectionLost();
    this.rejectWaiters(new ConnectError("disconnect() was called", Code.Canceled));
    this.setStatus("disconnected");
  }

  /** Replaces the token on the live session, and for every later reconnect. */
  async setToken(token: string): Promise<void> {
    this.token = token;
    if (this.connection && this.statusValue === "connected") {
      await this.connection.command("refreshToken", { token });
      this.scheduleRefresh();
    }
  }

  /** @internal Runs a command once a session is up (connecting on demand). */
  async command<K extends CommandCase>(kind: K, value: CommandInit<K>): Promise<CommandResult<K>> {
    if (this.statusValue !== "connected") await this.connect();
    return this.connection!.command(kind, value);
  }

  /** @internal */
  forgetChannel(topic: string): void {
    this.channels.delete(topic);
  }

  private open(): void {
    this.setStatus(this.attempt > 0 || this.connectedAt > 0 ? "reconnecting" : "connecting");
    const start = (token: string | undefined) => {
      if (!this.wanted || this.connection) return;
      this.token = token;
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
        // No token, no session: try again on the usual schedule.
        if (this.wanted) this.lost(ConnectError.from(error), true);
      });
  }

  private async read(connection: SessionConnection): Promise<void> {
    let failure: ConnectError | undefined;
    let mayReconnect = true;
    try {
      for await (const frame of connection.frames) {
        if (this.connection !== connection) return;
        mayReconnect = this.handle(connection, frame) && mayReconnect;
      }
    } catch (error) {
      failure = ConnectError.from(error);
      if (failure.code === Code.Unauthenticated || failure.code === Code.PermissionDenied) mayReconnect = false;
    }
    if (this.connection !== connection) return; // replaced or disconnected on purpose
    this.connection = undefined;
    this.lost(failure, mayReconnect);
  }

  private lost(failure: ConnectError | undefined, mayReconnect: boolean): void {
    this.welcome = undefined;
    this.stopTimers();
    for (const channel of this.channels.values()) channel.connectionLost();
    if (this.wanted && mayReconnect && this.options.reconnect !== false) {
      this.scheduleReconnect();
    } else {
      this.wanted = false;
      const error = failure ?? new ConnectError("the server ended the session", Code.Unavailable);
      this.rejectWaiters(error);
      this.setStatus("disconnected", error);
    }
  }

  /** Returns false when the server said not to reconnect. */
  private handle(connection: SessionConnection, frame: ServerFrame): boolean {
    this.lastFrameAt = Date.now();
    switch (frame.kind.case) {
      case "welcome": {
        this.welcome = frame.kind.value;
        this.connectedAt = Date.now();
        clearTimeout(this.connectTimer);
        this.watch(connection, frame.kind.value.heartbeatIntervalMs);
        this.scheduleRefresh();
        this.setStatus("connected");
        const waiters = this.waiters;
        this.waiters = [];
        for (const w of waiters) w.resolve();
        for (const channel of this.channels.values()) channel.connectionRestored();
        return true;
      }
      case "payload": {
        const payload = frame.kind.value;
        if (payload.topic === "") this.direct.dispatch(toPayload(payload));
        else this.channels.get(payload.topic)?.dispatch(toPayload(payload));
        return true;
      }
      case "heartbeat":
        connection.command("ping", {}).catch(() => {});
        return true;
      case "disconnect":
        return frame.kind.value.reconnect;
      default:
        return true;
    }
  }

  private armConnectTimeout(connection: SessionConnection): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (this.connection === connection && !this.welcome) this.giveUp(connection, `no welcome from the server within ${this.options.connectTimeoutMs ?? 10_000} ms`);
    }, this.options.connectTimeoutMs ?? 10_000);
    unref(this.connectTimer);
  }

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
    this.refreshTimer = setTimeout(async () => {
      try {
        await this.setToken(await this.options.getToken!());
      } catch {
        // The server ends the session at expiry and says why; nothing to add here.
      }
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

  private scheduleReconnect(): void {
    if (Date.now() - this.connectedAt > STABLE_MS && this.connectedAt > 0) this.attempt = 0;
    const delay = reconnectDelay(this.attempt++);
    this.setStatus("reconnecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.wanted) this.open();
    }, delay);
  }

  private nextWelcome(): Promise<void> {
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private rejectWaiters(error: unknown): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error);
  }

  private setStatus(status: ConnectionStatus, error?: ConnectError): void {
    if (this.statusValue === status) return;
    this.statusValue = status;
    for (const listener of [...this.statusListeners]) listener(status, error);
  }
}

import { Code, ConnectError } from "@connectrpc/connect";
import type { ServerFrame, Welcome } from "../../gen/chorus/v1/realtime_pb.js";
import { Channel } from "./channel.js";
import { toPayload } from "./convert.js";
import type { CommandCase, CommandInit, CommandResult, SessionConnection, SessionTransport } from "./session.js";
import type { ConnectionStatus } from "./types.js";

export interface RealtimeClientOptions {
  /** The Chorus server, e.g. http://localhost:8080. */
  url: string;
  /** A user token (JWT); sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Reconnect automatically after a lost connection (default true). */
  reconnect?: boolean;
}

/** Backoff before reconnect attempt n (0-based): 1 s, 2 s, 4 s … 30 s, each with ±20 % jitter. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(30_000, 1000 * 2 ** attempt);
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** A connection that lasted this long resets the backoff. */
const STABLE_MS = 10_000;

/**
 * The app's handle on Chorus: one session, any number of channels.
 * Transport-agnostic: the node and browser entry points bind a transport.
 */
export class RealtimeClient {
  private statusValue: ConnectionStatus = "idle";
  private readonly statusListeners = new Set<(status: ConnectionStatus) => void>();
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

  onStatusChange(callback: (status: ConnectionStatus) => void): () => void {
    this.statusListeners.add(callback);
    return () => this.statusListeners.delete(callback);
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
    const headers: Record<string, string> = this.token ? { authorization: `Bearer ${this.token}` } : {};
    const connection = this.transport.open(headers);
    this.connection = connection;
    void this.read(connection);
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
    this.welcome = undefined;
    for (const channel of this.channels.values()) channel.connectionLost();
    if (this.wanted && mayReconnect && this.options.reconnect !== false) {
      this.scheduleReconnect();
    } else {
      this.wanted = false;
      this.rejectWaiters(failure ?? new ConnectError("the server ended the session", Code.Unavailable));
      this.setStatus("disconnected");
    }
  }

  /** Returns false when the server said not to reconnect. */
  private handle(connection: SessionConnection, frame: ServerFrame): boolean {
    switch (frame.kind.case) {
      case "welcome": {
        this.welcome = frame.kind.value;
        this.connectedAt = Date.now();
        this.setStatus("connected");
        const waiters = this.waiters;
        this.waiters = [];
        for (const w of waiters) w.resolve();
        for (const channel of this.channels.values()) channel.connectionRestored();
        return true;
      }
      case "payload": {
        const payload = frame.kind.value;
        this.channels.get(payload.topic)?.dispatch(toPayload(payload));
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

  private setStatus(status: ConnectionStatus): void {
    if (this.statusValue === status) return;
    this.statusValue = status;
    for (const listener of [...this.statusListeners]) listener(status);
  }
}

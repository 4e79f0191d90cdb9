import type { Logger } from "./log.js";

/** What the app's back end is told when a member leaves a topic or a connection ends. */
export interface LeaveEvent {
  event: "presence_leave" | "disconnect";
  /** presence_leave only. */
  topic?: string;
  user_id: string;
  connection_id: string;
  /** The node that held the member or the connection. */
  node_id: string;
  /** untrack, disconnect, timeout (a connection gone for longer than the grace period), node_gone, or for a disconnect why it ended. */
  reason: string;
  /** Milliseconds since the Unix epoch. */
  at: number;
  /** The same for every attempt at delivering one event: the back end drops repeats by it. */
  idempotency_key: string;
}

/** Attempts per event, and the first wait between them (doubling, at most 30 s). */
const MAX_ATTEMPTS = 10;
const FIRST_RETRY_MS = 500;
/** Events waiting at most; past it the oldest is dropped (and said so). */
const MAX_QUEUED = 10_000;
/** Deliveries in flight at once. */
const CONCURRENCY = 8;

/**
 * Tells a back end about leaves and disconnects: `POST <url>` with a
 * LeaveEvent as JSON, at least once. A failed delivery (no answer in
 * time, or not a 2xx) is retried with backoff, up to ten attempts over
 * about four minutes; repeats carry the same idempotency key.
 */
export class LeaveHook {
  private readonly queue: Array<{ event: LeaveEvent; attempt: number; due: number }> = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  send(event: LeaveEvent): void {
    if (this.closed) return;
    if (this.queue.length >= MAX_QUEUED) {
      const dropped = this.queue.shift()!;
      this.log.warn("leave hook: too many events waiting; dropped the oldest", { idempotency_key: dropped.event.idempotency_key });
    }
    this.queue.push({ event, attempt: 0, due: 0 });
    this.pump();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = Date.now();
    while (this.inFlight < CONCURRENCY) {
      const i = this.queue.findIndex((q) => q.due <= now);
      if (i < 0) break;
      const item = this.queue.splice(i, 1)[0]!;
      this.inFlight++;
      void this.deliver(item).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
    const next = Math.min(...this.queue.map((q) => q.due));
    if (Number.isFinite(next) && !this.closed) this.timer = setTimeout(() => this.pump(), Math.max(0, next - now)).unref();
  }

  private async deliver(item: { event: LeaveEvent; attempt: number; due: number }): Promise<void> {
    try {
      const response = await fetch(this.url, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": item.event.idempotency_key },
        body: JSON.stringify(item.event),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return;
      throw new Error(`it answered HTTP ${response.status}`);
    } catch (error) {
      item.attempt++;
      if (item.attempt >= MAX_ATTEMPTS || this.closed) {
        this.log.error(`leave hook: gave up on an event after ${item.attempt} attempts (${(error as Error).message})`, { idempotency_key: item.event.idempotency_key });
        return;
      }
      item.due = Date.now() + Math.min(30_000, FIRST_RETRY_MS * 2 ** (item.attempt - 1));
      this.queue.push(item);
    }
  }
}

import { ConnectError } from "@connectrpc/connect";
import { systemNotice, type OutboundFrame } from "./frames.js";

/**
 * Wakes waiting session writers once per event-loop turn, so that every
 * frame queued during that turn leaves in one write per session.
 */
export class FlushScheduler {
  private pending = new Set<Outbox>();
  private spare = new Set<Outbox>();
  private scheduled = false;

  wake(outbox: Outbox): void {
    this.pending.add(outbox);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /**
   * Flushes one outbox at the end of the current tick rather than the
   * turn: for replies, which a client (a publisher keeping messages in
   * flight) waits on before sending more.
   */
  wakeSoon(outbox: Outbox): void {
    process.nextTick(() => outbox.release());
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    // An outbox woken while this flush runs goes to the next one.
    const due = this.pending;
    this.pending = this.spare;
    for (const outbox of due) outbox.release();
    due.clear();
    this.spare = due;
  };
}

export interface OutboxLimits {
  maxFrames: number;
  maxBytes: number;
}

/**
 * Where a push-mode outbox writes: the stream itself. `write` returns false
 * when the stream wants no more for now; the outbox then waits for resume().
 */
export interface FrameSink {
  write(batch: OutboundFrame[]): boolean;
  end(error: ConnectError | undefined): void;
}

/**
 * The bounded queue between the fan-out and one session's stream.
 *
 * Publishing only appends here (never awaits). When a subscriber stops
 * reading and its queue fills up, its queued payloads are dropped and it
 * stays cut off until its writer catches up; then it receives one SYSTEM
 * "lagged" notice per affected topic so it can resynchronise from history.
 * Replies and control frames are never dropped.
 */
export class Outbox {
  private queue: OutboundFrame[] = [];
  private queuedBytes = 0;
  /** Topics whose payloads were dropped, with how many (made on the first drop: most sessions never lag). */
  private dropped: Map<string, number> | undefined;
  private waiter: (() => void) | undefined;
  /** Push mode: the scheduler's flush writes straight into this sink. */
  private sink: FrameSink | undefined;
  private paused = false;
  private sinkEnded = false;
  private ended = false;
  private endError: ConnectError | undefined;
  /** Already in the scheduler's next flush: a broadcast wakes each outbox once, not once per frame. */
  private flushDue = false;

  constructor(
    private readonly limits: OutboxLimits,
    private readonly scheduler: FlushScheduler,
  ) {}

  get lagging(): boolean {
    return this.dropped !== undefined;
  }

  push(frame: OutboundFrame): void {
    if (this.ended) return;
    if (frame.droppable) {
      if (this.dropped) return this.drop(frame.topic, 1);
      if (this.queue.length >= this.limits.maxFrames || this.queuedBytes + frame.size > this.limits.maxBytes) {
        this.shed();
        return this.drop(frame.topic, 1);
      }
    }
    this.queue.push(frame);
    this.queuedBytes += frame.size;
    if (!frame.droppable && this.sink && !this.paused) this.scheduler.wakeSoon(this);
    else this.wake();
  }

  /**
   * Switches to push mode: from now on every flush writes what is queued
   * directly into `sink`, with no promise per batch.
   */
  attach(sink: FrameSink): void {
    this.sink = sink;
    this.scheduler.wake(this);
  }

  /** The sink drained: writing may go on. */
  resume(): void {
    this.paused = false;
    this.scheduler.wake(this);
  }

  /** Ends the stream after the frames already queued; with an error, the stream fails with it. */
  end(error?: ConnectError): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    if (this.sink) this.scheduler.wake(this);
    else this.release();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /**
   * Everything queued, as one batch; waits while nothing is. Resolves to
   * undefined when the outbox has ended and is empty, or when `signal` aborts.
   */
  async next(signal: AbortSignal): Promise<OutboundFrame[] | undefined> {
    while (this.queue.length === 0 && !this.dropped) {
      if (this.ended) {
        if (this.endError) throw this.endError;
        return undefined;
      }
      if (signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        this.waiter = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        signal.addEventListener("abort", onAbort, { once: true });
      });
      this.waiter = undefined;
    }
    return this.take();
  }

  /** Called by the scheduler: writes to the sink, or lets a waiting writer run. */
  release(): void {
    this.flushDue = false;
    if (this.sink) {
      if (this.paused || this.sinkEnded) return;
      if (this.queue.length > 0 || this.dropped) this.paused = !this.sink.write(this.take());
      if (this.ended && this.queue.length === 0 && !this.dropped && !this.paused) {
        this.sinkEnded = true;
        this.sink.end(this.endError);
      }
      return;
    }
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  private wake(): void {
    if (this.flushDue || !(this.waiter || (this.sink && !this.paused))) return;
    this.flushDue = true;
    this.scheduler.wake(this);
  }

  private take(): OutboundFrame[] {
    const batch = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    // The writer is ready for more: the cut-off ends here, with a notice.
    for (const [topic, count] of this.dropped ?? []) {
      batch.push(systemNotice(topic, "system:lagged", { reason: "slow_consumer", dropped: count }));
    }
    this.dropped = undefined;
    return batch;
  }

  private shed(): void {
    const kept: OutboundFrame[] = [];
    let keptBytes = 0;
    for (const frame of this.queue) {
      if (frame.droppable) {
        this.drop(frame.topic, 1);
      } else {
        kept.push(frame);
        keptBytes += frame.size;
      }
    }
    this.queue = kept;
    this.queuedBytes = keptBytes;
  }

  private drop(topic: string, count: number): void {
    this.dropped ??= new Map();
    this.dropped.set(topic, (this.dropped.get(topic) ?? 0) + count);
    this.wake();
  }
}

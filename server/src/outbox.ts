import { Code, ConnectError } from "@connectrpc/connect";
import { systemNotice, type OutboundFrame } from "./frames.js";

/**
 * Wakes waiting session writers once per event-loop turn, so that every
 * frame queued during that turn leaves in one write per session.
 */
export class FlushScheduler {
  /** Frames handed to clients' streams, and payloads dropped for slow ones (read by the metrics). */
  readonly counts = { framesSent: 0, dropped: 0 };
  /** Hears how long each flush took, in seconds. */
  onFlushed: ((seconds: number) => void) | undefined;
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
    const started = performance.now();
    for (const outbox of due) outbox.release();
    due.clear();
    this.spare = due;
    this.onFlushed?.((performance.now() - started) / 1000);
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
  /** Ends the stream now, dropping whatever is queued: the client is cut off. */
  abort(error: ConnectError): void;
}

/**
 * The bounded queue between the fan-out and one session's stream.
 *
 * Publishing only appends here (never awaits). When a subscriber stops
 * reading and its queue fills up, its queued payloads are dropped and it
 * stays cut off until its writer catches up; then it receives one SYSTEM
 * "lagged" notice per affected topic so it can resynchronise from history.
 * Replies and control frames are never dropped, but they count against the
 * same bound: a client that does not read its replies is cut off.
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
  /** Pull mode: how to cut the stream off when the client does not read (set by the stream's writer). */
  onAbort: ((error: ConnectError) => void) | undefined;
  /** Replays waiting for the queue to drain before they read more (made on first use). */
  private roomWaiters: Array<() => void> | undefined;

  constructor(
    private readonly limits: OutboxLimits,
    private readonly scheduler: FlushScheduler,
  ) {}

  /** Bytes queued and not yet written. */
  get bytesQueued(): number {
    return this.queuedBytes;
  }

  get lagging(): boolean {
    return this.dropped !== undefined;
  }

  push(frame: OutboundFrame): void {
    if (this.ended) return;
    if (this.queue.length >= this.limits.maxFrames || this.queuedBytes + frame.size > this.limits.maxBytes) {
      if (this.writeNow()) return this.push(frame);
      this.shed();
      if (frame.droppable) return this.drop(frame.topic, 1);
      if (this.queue.length >= this.limits.maxFrames || this.queuedBytes + frame.size > this.limits.maxBytes) {
        return this.fail(new ConnectError("the client does not read what it is sent (its replies pile up): cut off", Code.ResourceExhausted));
      }
    } else if (frame.droppable && this.dropped) {
      return this.drop(frame.topic, 1);
    }
    this.queue.push(frame);
    this.queuedBytes += frame.size;
    if (!frame.droppable && this.sink && !this.paused) this.scheduler.wakeSoon(this);
    else this.wake();
  }

  /**
   * A replay's chunk: never dropped as lag (the replay is paced by
   * whenRoom, so it never fills the queue by itself), but counted against
   * the same bound as replies.
   */
  pushAll(frames: readonly OutboundFrame[]): void {
    if (this.ended || frames.length === 0) return;
    let bytes = 0;
    for (const frame of frames) bytes += frame.size;
    if (this.queue.length + frames.length > this.limits.maxFrames || this.queuedBytes + bytes > this.limits.maxBytes) {
      if (this.writeNow()) return this.pushAll(frames);
      this.shed();
      if (this.queue.length + frames.length > this.limits.maxFrames || this.queuedBytes + bytes > this.limits.maxBytes) {
        return this.fail(new ConnectError("the client does not read what it is sent: cut off", Code.ResourceExhausted));
      }
    }
    for (const frame of frames) this.queue.push(frame);
    this.queuedBytes += bytes;
    this.wake();
  }

  /**
   * Resolves once the queue holds at most a quarter of its bound and the
   * stream is taking writes (or the outbox has ended): when a replay may
   * queue its next chunk.
   */
  whenRoom(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => (this.roomWaiters ??= []).push(resolve));
  }

  private hasRoom(): boolean {
    return this.ended || (!this.paused && this.queue.length <= this.limits.maxFrames / 4 && this.queuedBytes <= this.limits.maxBytes / 4);
  }

  private checkRoom(): void {
    if (!this.roomWaiters || !this.hasRoom()) return;
    const waiters = this.roomWaiters;
    this.roomWaiters = undefined;
    for (const resolve of waiters) resolve();
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
    this.checkRoom();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Cuts the stream off now: what is queued is dropped, the sink (or the pull-mode writer) aborted. */
  fail(error: ConnectError): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    this.queue = [];
    this.queuedBytes = 0;
    this.dropped = undefined;
    if (this.sink) {
      this.sinkEnded = true;
      this.sink.abort(error);
    } else {
      this.onAbort?.(error);
      this.release();
    }
    this.checkRoom();
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
      this.checkRoom();
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
    this.scheduler.counts.framesSent += batch.length;
    this.queue = [];
    this.queuedBytes = 0;
    // The writer is ready for more: the cut-off ends here, with a notice.
    for (const [topic, count] of this.dropped ?? []) {
      batch.push(systemNotice(topic, "system:lagged", { reason: "slow_consumer", dropped: count }));
    }
    this.dropped = undefined;
    if (this.roomWaiters) queueMicrotask(() => this.checkRoom());
    return batch;
  }

  /**
   * A full queue whose stream is taking writes is written now rather than
   * at the end of the turn: a burst (many commands read in one turn) is not
   * mistaken for a subscriber that stopped reading. True when it wrote.
   */
  private writeNow(): boolean {
    if (!this.sink || this.paused || this.sinkEnded || this.queue.length === 0) return false;
    this.paused = !this.sink.write(this.take());
    return true;
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
    this.scheduler.counts.dropped += count;
    this.dropped ??= new Map();
    this.dropped.set(topic, (this.dropped.get(topic) ?? 0) + count);
    this.wake();
  }
}

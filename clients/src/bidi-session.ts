import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ConnectRequestSchema, type ConnectRequest } from "../../gen/chorus/v1/realtime_pb.js";
import { publishCommandEnvelope } from "./command-wire.js";
import { ConnectStream, type ConnectStreamHandler } from "./connect-stream.js";
import { envelope } from "./envelopes.js";
import { decodeFrames, type InboundFrame } from "./frames.js";
import type { H2Target } from "./h2-target.js";
import { delayUntil, unref } from "./timers.js";
import { sessionEnded, type CommandCase, type CommandInit, type CommandResult, type Deadline, type SessionConnection, type SessionTransport } from "./session.js";

const METHOD = "chorus.v1.RealtimeService/Connect";
/** Frames received and not yet taken by the client: past this, the stream is not read (flow control holds the server). */
const READ_AHEAD = 4096;

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  deadline: Deadline;
}

/**
 * Sessions on the bidirectional `Connect` stream (HTTP/2), written and read
 * as Connect envelopes straight on the HTTP/2 stream of connect-node's
 * session manager: commands are frames with a request id, answered by Reply
 * frames on the same stream, so the server handles them strictly in the
 * order they were sent. (connect's generic client costs several times more
 * per command, and its request iterable waits on every queued write in
 * turn: a few thousand commands queued at once took seconds.)
 */
export class BidiSessionTransport implements SessionTransport {
  constructor(private readonly target: H2Target) {}

  open(headers: Record<string, string>): SessionConnection {
    return new BidiSession(this.target, headers);
  }

  /** Closes the HTTP/2 connection (the next session opens a new one). */
  dispose(): void {
    this.target.sessions.abort();
  }

  reset(): void {
    this.target.sessions.abort();
  }
}

class BidiSession implements SessionConnection, ConnectStreamHandler {
  readonly frames: AsyncIterable<InboundFrame[]>;
  private readonly call: ConnectStream;
  private readonly pending = new Map<bigint, Pending>();
  private nextRequestId = 1n;
  private ended = false;
  /** Why the session ended: undefined for a clean end (or our own close). */
  private failure: ConnectError | undefined;
  /** Server messages' frames (replies taken out), oldest first; `queued` counts their frames. */
  private readonly inbox: InboundFrame[][] = [];
  private queued = 0;
  private wake: (() => void) | undefined;
  /** One timer for every pending command's deadline: set for the earliest, and when it fires, again for the next. */
  private deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  private deadlineTimerAt = Infinity;

  constructor(target: H2Target, headers: Record<string, string>) {
    this.call = new ConnectStream(target, METHOD, headers, this);
    this.frames = { [Symbol.asyncIterator]: () => this.iterate() };
  }

  command<K extends CommandCase>(kind: K, value: CommandInit<K>, deadline: Deadline): Promise<CommandResult<K>> {
    if (this.ended) return Promise.reject(sessionEnded(false));
    if (Date.now() >= deadline.at) return Promise.reject(deadline.expired());
    const requestId = this.nextRequestId++;
    const bytes =
      (kind === "publish" ? publishCommandEnvelope(requestId, value as CommandInit<"publish">) : undefined) ??
      envelope(0, toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId, command: { case: kind, value } as ConnectRequest["command"] })));
    return new Promise<CommandResult<K>>((resolve, reject) => {
      this.pending.set(requestId, { resolve: resolve as (value: unknown) => void, reject, deadline });
      this.watchDeadline(deadline.at);
      this.call.write(bytes);
    });
  }

  /** Makes sure the timer fires by `at` (a timer already set earlier stays). */
  private watchDeadline(at: number): void {
    if (at >= this.deadlineTimerAt) return;
    clearTimeout(this.deadlineTimer);
    this.deadlineTimerAt = at;
    this.deadlineTimer = setTimeout(this.expire, delayUntil(at));
    unref(this.deadlineTimer);
  }

  /** Fails the commands whose deadline has passed, and sets the timer for the earliest of the rest. */
  private readonly expire = (): void => {
    this.deadlineTimer = undefined;
    this.deadlineTimerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const [requestId, pending] of this.pending) {
      if (pending.deadline.at <= now) {
        this.pending.delete(requestId);
        pending.reject(pending.deadline.expired());
      } else if (pending.deadline.at < next) {
        next = pending.deadline.at;
      }
    }
    if (next !== Infinity) this.watchDeadline(next);
  };

  close(): void {
    this.call.close();
  }

  /** The frames that are not replies, a server message's worth at a time; ends with the session, throws if it failed. */
  private async *iterate(): AsyncGenerator<InboundFrame[]> {
    for (;;) {
      const batch = this.inbox.shift();
      if (batch) {
        this.queued -= batch.length;
        if (this.inbox.length === 0) this.call.resume();
        yield batch;
        continue;
      }
      if (this.ended) {
        if (this.failure) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  // ---- ConnectStreamHandler ----

  onMessage(body: Buffer): boolean {
    let frames: InboundFrame[];
    try {
      frames = decodeFrames(body);
    } catch (error) {
      this.call.close(new ConnectError(`the server's message does not decode: ${String(error)}`, Code.Internal));
      return false;
    }
    const batch: InboundFrame[] = [];
    for (const frame of frames) {
      if (frame.kind.case === "reply") this.settle(frame.kind.value); // answered here, in the order they came
      else batch.push(frame);
    }
    if (batch.length > 0) {
      this.inbox.push(batch);
      this.queued += batch.length;
    }
    if (this.queued > READ_AHEAD) this.call.pause();
    this.wakeReader();
    return true;
  }

  /** The session is over: commands waiting for an answer fail (sent or not), the frames end after what arrived. */
  onEnd(failure: ConnectError | undefined): void {
    this.ended = true;
    this.failure = failure;
    const error = this.call.opened ? (failure ?? sessionEnded(true)) : sessionEnded(false);
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.deadlineTimerAt = Infinity;
    this.wakeReader();
  }

  private settle(reply: { requestId: bigint; result: { case: string | undefined; value?: unknown } }): void {
    const pending = this.pending.get(reply.requestId);
    if (!pending) return;
    this.pending.delete(reply.requestId);
    if (reply.result.case === "error") {
      const e = reply.result.value as { code: number; message: string };
      pending.reject(new ConnectError(e.message, e.code as Code));
    } else {
      pending.resolve(reply.result.value);
    }
  }

  private wakeReader(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

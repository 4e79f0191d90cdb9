import type { ServerStream, StreamListener } from "../server-stream.js";
import type { HeaderField } from "./hpack.js";

export type { StreamListener } from "../server-stream.js";

/** The stream's side of its connection: framing, windows and the socket. */
export interface StreamOwner {
  /** Sends what the windows allow of `chunk` as DATA frames; returns the bytes sent. */
  sendData(stream: H2Stream, chunk: Buffer, endStream: boolean): number;
  sendHeaders(streamId: number, fields: readonly HeaderField[], endStream: boolean): void;
  /** Returns `bytes` of receive window to the peer, for the stream and the connection. */
  consumed(stream: H2Stream, bytes: number): void;
  /** Calls stream.flush() when the connection window or the socket allows more. */
  waitForWindow(stream: H2Stream): void;
  waitForDrain(stream: H2Stream): void;
  readonly socketFull: boolean;
  reset(stream: H2Stream, code: number): void;
  removed(stream: H2Stream): void;
  /** A listener threw: the stream is reset and the failure logged; nothing reaches the connection. */
  streamFailed(stream: H2Stream, error: unknown): void;
  /** Asks the peer to prove it is alive (a PING it must answer). */
  probe(): void;
}

const NO_ERROR = 0;
const PROTOCOL_ERROR = 1;
/** Bytes waiting for the windows before write() asks the writer to wait. */
const HIGH_WATER = 16 * 1024;

/**
 * One request/response exchange on an HTTP/2 connection, server side.
 *
 * The request body is delivered to the listener while it reads (held,
 * with its flow-control window, while paused). The response is written
 * through the connection's windows: what they do not take waits here,
 * and write() says false until it has gone.
 */
export class H2Stream implements ServerStream {
  sendWindow: number;
  /** Receive window the peer still has on this stream. */
  recvWindow: number;
  /** Received but not yet returned to the peer by a WINDOW_UPDATE. */
  unacked = 0;
  remoteEnded: boolean;
  /** No more writes: the response is complete (possibly still queued). */
  private localEnded = false;
  private closed = false;
  private listener: StreamListener | undefined;
  private paused = true;
  private discarding = false;
  private endDelivered = false;
  private inbox: Buffer[] | undefined;
  private outbox: Buffer[] | undefined;
  private queuedBytes = 0;
  private trailers: readonly HeaderField[] | undefined;
  private needDrain = false;
  /** The peer's RST_STREAM code, when it reset the stream. */
  resetCode: number | undefined;
  /** Body bytes received, checked against the request's content-length (§8.1.1). */
  private receivedLength = 0;

  constructor(
    private readonly owner: StreamOwner,
    readonly id: number,
    sendWindow: number,
    recvWindow: number,
    remoteEnded: boolean,
    /** A response to HEAD: its body is never sent (§8.1). */
    private readonly bodyless = false,
    private readonly contentLength: number | undefined = undefined,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
    this.remoteEnded = remoteEnded;
  }

  /** Asks the peer of this stream's connection to prove it is alive. */
  probeConnection(): void {
    this.owner.probe();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Reports data, end, drain and close to `listener`; data flows once resume() is called. */
  listen(listener: StreamListener): void {
    this.listener = listener;
  }

  resume(): void {
    this.paused = false;
    while (this.inbox && !this.paused && !this.closed) {
      const chunk = this.inbox.shift()!;
      if (this.inbox.length === 0) this.inbox = undefined;
      this.owner.consumed(this, chunk.length);
      this.deliverData(chunk);
    }
    if (!this.paused) this.deliverEnd();
  }

  pause(): void {
    this.paused = true;
  }

  /** Drops the rest of the body unread (its window is still returned). */
  discard(): void {
    this.discarding = true;
    if (this.inbox) for (const chunk of this.inbox) this.owner.consumed(this, chunk.length);
    this.inbox = undefined;
  }

  // ---- request side, fed by the connection ----

  received(data: Buffer, endStream: boolean): void {
    if (this.contentLength !== undefined) {
      this.receivedLength += data.length;
      if (this.receivedLength > this.contentLength || (endStream && this.receivedLength !== this.contentLength)) {
        this.owner.consumed(this, data.length);
        return this.reset(PROTOCOL_ERROR); // the body disagrees with its content-length: malformed
      }
    }
    if (data.length > 0) {
      if (this.discarding) this.owner.consumed(this, data.length);
      else if (this.paused || this.inbox) (this.inbox ??= []).push(data);
      else {
        this.owner.consumed(this, data.length);
        this.deliverData(data);
      }
    }
    if (endStream) {
      this.remoteEnded = true;
      if (!this.paused || this.discarding) this.deliverEnd();
    }
  }

  private deliverEnd(): void {
    if (!this.remoteEnded || this.endDelivered || this.inbox || this.closed) return;
    this.endDelivered = true;
    try {
      this.listener?.onEnd();
    } catch (error) {
      this.owner.streamFailed(this, error);
    }
  }

  /** Listener calls run inside the stream's boundary: a throw fails this stream, nothing else. */
  private deliverData(chunk: Buffer): void {
    try {
      this.listener?.onData(chunk);
    } catch (error) {
      this.owner.streamFailed(this, error);
    }
  }

  private deliverDrain(): void {
    try {
      this.listener?.onDrain();
    } catch (error) {
      this.owner.streamFailed(this, error);
    }
  }

  // ---- response side ----

  respond(fields: readonly HeaderField[], endStream = false): void {
    if (this.localEnded || this.closed) return;
    this.owner.sendHeaders(this.id, fields, endStream);
    if (endStream) {
      this.localEnded = true;
      this.finished();
    }
  }

  /**
   * Writes response data; false means wait for the listener's onDrain.
   * What the flow-control windows do not take yet waits here, up to
   * HIGH_WATER bytes before write() says false (the slack Node's own
   * streams give, so a reader keeping up is not paused at every window).
   */
  write(chunk: Buffer): boolean {
    if (this.localEnded || this.closed || this.bodyless) return true;
    if (this.outbox) return this.queue(chunk);
    const sent = this.owner.sendData(this, chunk, false);
    if (sent < chunk.length) {
      this.owner.waitForWindow(this);
      return this.queue(sent ? chunk.subarray(sent) : chunk);
    }
    if (this.owner.socketFull) {
      this.needDrain = true;
      this.owner.waitForDrain(this);
      return false;
    }
    return true;
  }

  private queue(chunk: Buffer): boolean {
    (this.outbox ??= []).push(chunk);
    this.queuedBytes += chunk.length;
    if (this.queuedBytes < HIGH_WATER) return true;
    this.needDrain = true;
    return false;
  }

  /** Ends the response after what is queued: with `chunk` as its last data, then `trailers` if given. */
  end(chunk?: Buffer, trailers?: readonly HeaderField[]): void {
    if (this.localEnded || this.closed) return;
    this.localEnded = true;
    this.trailers = trailers;
    if (chunk?.length && !this.bodyless) {
      (this.outbox ??= []).push(chunk); // the end is never refused
      this.queuedBytes += chunk.length;
    }
    this.flush();
  }

  /** Sends what the windows now allow; called again by the connection when they grow. */
  flush(): void {
    if (this.closed) return;
    while (this.outbox) {
      const head = this.outbox[0]!;
      const last = this.localEnded && this.outbox.length === 1 && !this.trailers;
      const sent = this.owner.sendData(this, head, last);
      this.queuedBytes -= sent;
      if (sent < head.length) {
        this.outbox[0] = head.subarray(sent);
        this.owner.waitForWindow(this);
        return;
      }
      this.outbox.shift();
      if (this.outbox.length === 0) this.outbox = undefined;
      if (last) return this.finished();
    }
    if (this.localEnded) {
      if (this.trailers) this.owner.sendHeaders(this.id, this.trailers, true);
      else this.owner.sendData(this, Buffer.alloc(0), true);
      return this.finished();
    }
    if (!this.needDrain) return;
    if (this.owner.socketFull) return this.owner.waitForDrain(this);
    this.needDrain = false;
    this.deliverDrain();
  }

  /** The socket took its buffered bytes. */
  drained(): void {
    if (this.closed || this.outbox || !this.needDrain) return;
    this.needDrain = false;
    this.deliverDrain();
  }

  /** Our END_STREAM went out. A request still being sent is then of no use: RST_STREAM(NO_ERROR) says so. */
  private finished(): void {
    if (!this.remoteEnded) this.owner.reset(this, NO_ERROR);
    else this.close();
  }

  /** Ends the stream here and at the peer with RST_STREAM `code`. */
  reset(code: number): void {
    if (!this.closed) this.owner.reset(this, code);
  }

  /** Forgets the stream: nothing more is sent or delivered. */
  close(resetCode?: number): void {
    if (this.closed) return;
    this.closed = true;
    this.resetCode = resetCode;
    this.inbox = undefined;
    this.outbox = undefined;
    this.owner.removed(this);
    try {
      this.listener?.onClose();
    } catch (error) {
      this.owner.streamFailed(this, error);
    }
  }
}

import type { HeaderField } from "./h2/hpack.js";

/** What a stream tells whoever serves it: one object, not four closures. */
export interface StreamListener {
  onData(chunk: Buffer): void;
  onEnd(): void;
  /** The stream takes writes again after write() returned false. */
  onDrain(): void;
  /** The stream is gone: ended both ways, reset, or its connection closed. */
  onClose(): void;
}

/**
 * One HTTP/2 request/response exchange as the routes see it, whichever
 * HTTP/2 implementation carries it: Chorus' own (h2/) or Node's `http2`
 * module (node-h2/, the CHORUS_HTTP2=node escape hatch).
 */
export interface ServerStream {
  readonly isClosed: boolean;
  /** The peer's RST_STREAM code, when it reset the stream. */
  readonly resetCode: number | undefined;
  /** Reports data, end, drain and close to `listener`; data flows once resume() is called. */
  listen(listener: StreamListener): void;
  resume(): void;
  pause(): void;
  /** Drops the rest of the request body unread. */
  discard(): void;
  respond(fields: readonly HeaderField[], endStream?: boolean): void;
  /** Writes response data; false means wait for the listener's onDrain. */
  write(chunk: Buffer): boolean;
  /** Ends the response after what is queued: with `chunk` as its last data, then `trailers` if given. */
  end(chunk?: Buffer, trailers?: readonly HeaderField[]): void;
  /** Ends the stream here and at the peer with RST_STREAM `code`. */
  reset(code: number): void;
  /** Asks the peer of this stream's connection to prove it is alive; a silent peer's connection ends. */
  probeConnection(): void;
}

/** A request's head as the routes see it (RFC 9113 §8.3: checked before it gets here). */
export type { RequestHead } from "./h2/request-head.js";

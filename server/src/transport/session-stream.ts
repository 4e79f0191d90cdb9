import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type * as http from "node:http";
import { ConnectRequestSchema, ListenRequestSchema } from "../../../gen/chorus/v1/realtime_pb.js";
import type { OutboundFrame } from "../frames.js";
import type { FrameSink } from "../outbox.js";
import type { ChorusNode } from "../node.js";
import type { Identity } from "../auth.js";
import type { Session, SessionKind } from "../session.js";
import { H2_ERROR } from "./h2/connection.js";
import type { ServerStream } from "./server-stream.js";
import { TurnBudget } from "../turn.js";

/**
 * The two session streams (`Connect`, `Listen`) framed by hand.
 *
 * Connect, gRPC and gRPC-Web frame data identically: [flags][u32 length]
 * [message]. So a batch of pre-encoded frames becomes one envelope written
 * straight into the HTTP stream: no generator, no promise and no
 * serialisation per subscriber. Only the end of a stream differs by
 * protocol (an end-stream envelope, HTTP/2 trailers, a trailer envelope).
 *
 * Taken only for what it fully covers: binary messages, no compression, no
 * timeout header. Everything else (JSON clients, grpc-web-text, …) goes
 * through connect-node's own handlers, with the same session underneath.
 */
export type Protocol = "connect" | "grpc" | "grpc-web";
export interface SessionRoute {
  kind: SessionKind;
  protocol: Protocol;
  /** The request's content type, which the response repeats. */
  contentType: string;
}

const PATHS: Record<string, SessionKind> = {
  "/chorus.v1.RealtimeService/Connect": "connect",
  "/chorus.v1.RealtimeService/Listen": "listen",
};

/** The route for a request this path serves, or undefined to leave it to connect-node. */
export function sessionStreamRoute(method: string | undefined, path: string | undefined, h: Record<string, string | string[] | undefined>, http2: boolean): SessionRoute | undefined {
  const kind = PATHS[path ?? ""];
  if (!kind || method !== "POST") return undefined;
  // Listen is server-streaming: HTTP/1.1 carries it. Connect is bidi: connect-node answers HTTP/1.1 attempts with 505.
  const framing = plainStreamFraming(h, http2, kind === "listen");
  return framing && { kind, ...framing };
}

/**
 * The protocol of a streaming request that can be framed by hand: binary,
 * uncompressed, without a timeout header (those go to connect-node). gRPC
 * needs HTTP/2; the others take HTTP/1.1 only where `http1` says the
 * method allows it.
 */
export function plainStreamFraming(h: Record<string, string | string[] | undefined>, http2: boolean, http1: boolean): { protocol: Protocol; contentType: string } | undefined {
  if (h["connect-timeout-ms"] || h["grpc-timeout"]) return undefined;
  for (const encoding of [h["connect-content-encoding"], h["grpc-encoding"]]) {
    if (encoding && encoding !== "identity") return undefined;
  }
  const contentType = h["content-type"];
  switch (contentType) {
    case "application/connect+proto":
      return http1 || http2 ? { protocol: "connect", contentType } : undefined;
    case "application/grpc":
    case "application/grpc+proto":
      return http2 ? { protocol: "grpc", contentType } : undefined;
    case "application/grpc-web+proto":
      return http1 || http2 ? { protocol: "grpc-web", contentType } : undefined;
    default:
      return undefined;
  }
}

/** The stream's events, delivered to one object (no closures per session). */
export interface WireListener {
  readonly onData: (chunk: Buffer) => void;
  readonly onEnd: () => void;
  readonly onDrain: () => void;
  readonly onClose: () => void;
}

/**
 * What a session stream needs from HTTP, whichever version carries it.
 * Request headers are read once, by the route, and not kept: an idle
 * session holds only what it needs.
 */
export interface Wire {
  /** Sends the response headers now (fetch and proxies treat a stream without them as hung). */
  respond(contentType: string, headers?: Record<string, string>): void;
  write(chunk: Buffer): boolean;
  end(chunk: Buffer | undefined, trailers?: Record<string, string>): void;
  /** Reports drain and close to `to`. */
  watch(to: WireListener): void;
  /** Starts reading the request body into `to`. */
  read(to: WireListener): void;
  /** Stops delivering the body (after a protocol error) but keeps draining it. */
  discard(to: WireListener): void;
  /** Stops reading the body: flow control makes the client wait. */
  pauseReading(): void;
  resumeReading(): void;
  /** Ends the exchange now, whatever is queued: the client is cut off. */
  abort(): void;
  /** The client seems gone: ask its connection to prove otherwise. */
  probe(): void;
}

/** HTTP/2: a stream of Chorus' own HTTP/2 connection, or of Node's. */
export class H2Wire implements Wire {
  constructor(private readonly stream: ServerStream) {}

  respond(contentType: string, headers: Record<string, string> = {}): void {
    // Trailers need no announcement in HTTP/2: end() sends them or not.
    this.stream.respond([[":status", "200"], ["content-type", contentType], ...Object.entries(headers)]);
  }

  write(chunk: Buffer): boolean {
    return this.stream.write(chunk);
  }

  end(chunk: Buffer | undefined, trailers?: Record<string, string>): void {
    this.stream.end(chunk, trailers && Object.entries(trailers));
  }

  watch(to: WireListener): void {
    this.stream.listen(to);
  }

  read(): void {
    this.stream.resume();
  }

  discard(): void {
    this.stream.discard();
  }

  pauseReading(): void {
    this.stream.pause();
  }

  resumeReading(): void {
    this.stream.resume();
  }

  abort(): void {
    // gRPC clients read ENHANCE_YOUR_CALM as RESOURCE_EXHAUSTED.
    this.stream.reset(H2_ERROR.ENHANCE_YOUR_CALM);
  }

  probe(): void {
    this.stream.probeConnection();
  }
}

/** HTTP/1.1 (browsers): the server's request and response. */
export class Http1Wire implements Wire {
  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
  ) {}

  respond(contentType: string, headers: Record<string, string> = {}): void {
    this.res.writeHead(200, { ...headers, "content-type": contentType });
    this.res.flushHeaders();
  }

  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  end(chunk: Buffer | undefined, trailers?: Record<string, string>): void {
    if (trailers) this.res.addTrailers(trailers);
    this.res.end(chunk);
  }

  watch(to: WireListener): void {
    this.res.on("drain", to.onDrain);
    this.res.once("close", to.onClose);
  }

  read(to: WireListener): void {
    this.req.on("data", to.onData);
    this.req.on("end", to.onEnd);
  }

  discard(to: WireListener): void {
    this.req.off("data", to.onData);
    this.req.resume();
  }

  pauseReading(): void {
    this.req.pause();
  }

  resumeReading(): void {
    this.req.resume();
  }

  abort(): void {
    this.res.destroy();
  }

  probe(): void {
    // An HTTP/1.1 connection carries one exchange: the idle sweep closes it once this one ends.
  }
}

/** Serves one session stream: `authorization` is the request's header, if any. */
export function serveSessionStream(node: ChorusNode, wire: Wire, route: SessionRoute, authorization: string | undefined): { readonly bufferedBytes: number } {
  const stream = new SessionStream(node, wire, route);
  stream.start(authorization);
  return stream;
}

const NO_BYTES = Buffer.alloc(0);
/** Commands one session stream runs per event-loop turn before it lets the others (and the flush) have theirs. */
export const COMMANDS_PER_TURN = 64;
const SETTLED: Promise<void> = Promise.resolve();

/**
 * One session stream: identifies the caller, opens its session, splits the
 * request body into envelopes and is the sink its outbox writes into. One
 * object per connection, with four listeners, because idle connections are
 * what a server holds most of.
 *
 * What a client can make it hold is bounded: commands read but not yet
 * settled (a client pipelining past the limit is paused through flow
 * control, not buffered), the bytes of one envelope, and the outbox, which
 * cuts off a client that does not read its replies.
 */
class SessionStream implements FrameSink {
  private session: Session | undefined;
  /** Nothing more may be written: ended by us, or closed by the client. */
  private finished = false;
  /** Unread bytes of the request body. */
  private pending: Buffer = NO_BYTES;
  /** Bytes of an oversized envelope still to skip, and the request it answers. */
  private skipping = 0;
  private failed = false;
  private listenRequests = 0;
  /** Connect frames run one after another, in arrival order. */
  private chain = SETTLED;
  /** Frames in the chain not yet run to their end. */
  private queued = 0;
  /** Commands read this turn: a burst yields to the other connections (see turn.ts). */
  private readonly budget = new TurnBudget(COMMANDS_PER_TURN);
  private yielded = false;
  /** Commands read and not yet settled (answered; for a publish, acknowledged). */
  private inFlight = 0;
  private readPaused = false;
  /** The client ended its side of the stream. */
  private bodyEnded = false;
  /** A Connect stream whose client ended its side: the session ends once every command read is settled. */
  private closeWhenSettled = false;

  constructor(
    private readonly node: ChorusNode,
    private readonly wire: Wire,
    private readonly route: SessionRoute,
  ) {}

  /** Request bytes held unparsed: at most one envelope (bounded by the read limit) plus one chunk. */
  get bufferedBytes(): number {
    return this.pending.length;
  }

  start(authorization: string | undefined): void {
    this.wire.respond(this.route.contentType);
    this.wire.watch(this);
    let header: Headers;
    try {
      header = new Headers(authorization ? { authorization } : {});
    } catch {
      return this.finish(new ConnectError("the authorization header holds characters no header may hold", Code.Unauthenticated));
    }
    // The body waits (paused) until the caller is known.
    this.node
      .identify(header)
      .then(
        (identity) => this.opened(identity),
        (error: unknown) => this.finish(ConnectError.from(error)),
      )
      .catch((error: unknown) => {
        this.node.logError("session stream failed to start", error);
        this.finish(new ConnectError("internal error", Code.Internal));
      });
  }

  private opened(identity: Identity): void {
    if (this.finished) return;
    try {
      this.session = this.node.openSession(identity, this.route.kind);
    } catch (error) {
      return this.finish(ConnectError.from(error));
    }
    this.session.outbox.attach(this);
    this.wire.read(this);
  }

  // ---- FrameSink: the outbox writes here ----

  write(batch: OutboundFrame[]): boolean {
    return this.finished ? true : this.wire.write(envelope(batch));
  }

  end(error: ConnectError | undefined): void {
    this.finish(error);
  }

  abort(): void {
    if (this.finished) return;
    this.finished = true;
    this.wire.abort();
  }

  // ---- WireListener ----

  readonly onClose = (): void => {
    this.finished = true; // the client left: nothing more can be written
    this.session?.close();
  };

  readonly onDrain = (): void => {
    this.session?.outbox.resume();
  };

  readonly onData = (chunk: Buffer): void => {
    if (this.failed) return;
    if (this.skipping > 0) {
      const skipped = Math.min(this.skipping, chunk.length);
      this.skipping -= skipped;
      chunk = chunk.subarray(skipped);
      if (chunk.length === 0) return;
    }
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.parse();
  };

  readonly onEnd = (): void => {
    this.bodyEnded = true;
    this.parse();
  };

  /** Reads whole envelopes from what has arrived, as long as the in-flight limit allows. */
  private parse(): void {
    if (this.failed || !this.session) return;
    let pending = this.pending;
    const limit = this.node.config.maxPayloadBytes * 2 + 64 * 1024;
    try {
      while (pending.length >= 5 && !this.readPaused && !this.yielded) {
        const flags = pending[0]!;
        const length = pending.readUInt32BE(1);
        if (flags & 0x01) throw new ConnectError("compressed messages are not accepted", Code.Unimplemented);
        if (length > limit && this.route.kind === "connect") {
          // Refused like any other command, without ending the session; its bytes are skipped as they come.
          this.tooLarge(pending.subarray(5), length, limit);
          const available = Math.min(pending.length - 5, length);
          this.skipping = length - available;
          pending = pending.subarray(5 + available);
          continue;
        }
        if (length > limit) throw new ConnectError(`message of ${length} bytes exceeds the limit of ${limit}`, Code.ResourceExhausted);
        if (pending.length < 5 + length) break;
        if (!this.budget.take()) {
          this.yieldTurn();
          break;
        }
        const body = pending.subarray(5, 5 + length);
        pending = pending.subarray(5 + length);
        if (!(flags & 0x02)) this.message(body); // 0x02: a client end-of-stream marker carries no message
      }
      this.pending = pending.length ? pending : NO_BYTES;
    } catch (error) {
      const e = ConnectError.from(error);
      return this.fail(e.code === Code.Unknown || e.code === Code.Internal ? new ConnectError(`malformed frame: ${e.rawMessage}`, Code.InvalidArgument) : e);
    }
    if (!this.bodyEnded || this.readPaused || this.yielded) return;
    if (this.skipping > 0) return this.fail(new ConnectError("request ended inside a message", Code.InvalidArgument));
    this.endOfRequest();
  }

  /** The client closed its side: Listen goes on; Connect finishes what is queued, then ends. */
  private endOfRequest(): void {
    if (this.pending.length > 0) return this.fail(new ConnectError("request ended inside a message", Code.InvalidArgument));
    this.bodyEnded = false;
    if (this.route.kind !== "connect") return;
    // Every command read is answered first, a publish once it is acknowledged (which can come after the
    // commands queued behind it have run): only then does the session end.
    this.closeWhenSettled = true;
    this.closeIfSettled();
  }

  /** A clean goodbye once nothing is in flight: the session's presence leaves at once. */
  private closeIfSettled(): void {
    if (!this.closeWhenSettled || this.inFlight > 0) return;
    this.closeWhenSettled = false;
    // Called from a publish's acknowledgement, outside the connection's boundary: a throw ends this stream only.
    try {
      this.session!.close(undefined, true);
    } catch (error) {
      this.node.logError("a session failed to end", error);
      this.abort();
    }
  }

  private message(body: Uint8Array): void {
    const session = this.session!;
    if (this.route.kind === "listen") {
      if (++this.listenRequests > 1) throw new ConnectError("Listen takes exactly one request message", Code.InvalidArgument);
      fromBinary(ListenRequestSchema, body);
      return;
    }
    const frame = fromBinary(ConnectRequestSchema, body);
    this.admit();
    // A publish with nothing queued ahead of it runs now: it is taken (positioned) at once and answered when
    // acknowledged, so it needs no place in the chain; the chain keeps every other case in arrival order.
    if (this.queued === 0 && frame.command.case === "publish") {
      try {
        return session.publish(frame.requestId, frame.command.value, this.settle);
      } catch (error) {
        return this.commandFailed(error);
      }
    }
    this.queued++;
    this.chain = this.chain
      .then(() => (session.isClosed ? this.settle() : session.handleFrame(frame, this.settle)))
      .catch((error: unknown) => this.commandFailed(error))
      .finally(this.dequeued);
  }

  private readonly dequeued = (): void => {
    this.queued--;
  };

  private commandFailed(error: unknown): void {
    this.node.logError("session command failed", error);
    this.session?.close(new ConnectError("internal error", Code.Internal));
  }

  /** A command envelope over the limit: answered with an error for its request id (read from its first bytes). */
  private tooLarge(head: Buffer, length: number, limit: number): void {
    const requestId = leadingRequestId(head);
    this.admit();
    const session = this.session!;
    const error = new ConnectError(`command of ${length} bytes exceeds the limit of ${limit}`, Code.ResourceExhausted);
    this.queued++;
    this.chain = this.chain
      .then(() => {
        session.refuse(requestId, error);
        this.settle();
      })
      .finally(this.dequeued);
  }

  private admit(): void {
    if (++this.inFlight >= this.node.config.maxInFlightCommands && !this.readPaused) {
      this.readPaused = true;
      this.wire.pauseReading();
    }
  }

  /** One command is done: below half the limit, reading goes on. */
  private readonly settle = (): void => {
    this.inFlight--;
    if (this.closeWhenSettled) return this.closeIfSettled();
    if (this.readPaused && this.inFlight <= this.node.config.maxInFlightCommands / 2) {
      this.readPaused = false;
      if (this.yielded) return; // the next turn goes on
      this.wire.resumeReading();
      this.parse();
    }
  };

  /** This turn's share of commands is used: the rest waits for the next turn (and the flush before it). */
  private yieldTurn(): void {
    this.yielded = true;
    this.wire.pauseReading();
    setImmediate(() => {
      this.yielded = false;
      if (this.readPaused || this.failed) return;
      try {
        // What has arrived is worked through first: more is read only once it is (not appended to it meanwhile).
        this.parse();
        if (!this.yielded && !this.readPaused && !this.failed) this.wire.resumeReading();
      } catch (error) {
        this.commandFailed(error); // outside the connection's boundary: the session ends, not the process
      }
    });
  }

  /** A protocol violation: the session ends with its code; the rest of the body is drained unread. */
  private fail(error: ConnectError): void {
    if (this.failed) return;
    this.failed = true;
    this.pending = NO_BYTES;
    this.wire.discard(this);
    this.session!.close(error);
  }

  private finish(error: ConnectError | undefined): void {
    if (this.finished) return;
    this.finished = true;
    // Dropped for silence: the connection under it may be dead too.
    if (error?.code === Code.DeadlineExceeded) this.wire.probe();
    writeEnd(this.wire, this.route.protocol, error);
  }
}

/** ConnectRequest.request_id, when the message starts with it (field 1, as protobuf writers order fields); 0 otherwise. */
function leadingRequestId(bytes: Buffer): bigint {
  if (bytes[0] !== 0x08) return 0n;
  let value = 0n;
  for (let i = 1, shift = 0n; i < bytes.length && i <= 10; i++, shift += 7n) {
    value |= BigInt(bytes[i]! & 0x7f) << shift;
    if (!(bytes[i]! & 0x80)) return value;
  }
  return 0n;
}

/**
 * The last envelope built, with the frames it holds. In one flush,
 * subscribers of the same topics usually hold exactly the same frames:
 * they then share one buffer (compared by identity, never by content).
 */
let lastBatch: OutboundFrame[] = [];
let lastEnvelope: Buffer = Buffer.alloc(0);

function sameFrames(a: OutboundFrame[], b: OutboundFrame[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The data envelopes (ConnectResponse/ListenResponse messages) holding a batch of pre-encoded frames. */
function envelope(batch: OutboundFrame[]): Buffer {
  if (sameFrames(batch, lastBatch)) return lastEnvelope;
  lastBatch = batch;
  lastEnvelope = buildEnvelope(batch);
  return lastEnvelope;
}

/**
 * Envelope content stays within one HTTP/2 DATA frame: a subscriber that
 * fell behind gets its backlog as many small messages it can take one by
 * one, not one large message a client must gather before reading any.
 */
const MAX_ENVELOPE_CONTENT = 16_384 - 5;

function buildEnvelope(batch: OutboundFrame[]): Buffer {
  // Where each envelope starts in the batch (a frame larger than the limit travels alone).
  const starts: number[] = [];
  let total = 0;
  let content = MAX_ENVELOPE_CONTENT;
  batch.forEach((f, i) => {
    if (content + 1 + f.size > MAX_ENVELOPE_CONTENT && content > 0) {
      starts.push(i);
      content = 0;
      total += 5;
    }
    content += 1 + f.size;
    total += 1 + f.size;
  });
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  starts.forEach((start, k) => {
    const end = starts[k + 1] ?? batch.length;
    let size = 0;
    for (let i = start; i < end; i++) size += 1 + batch[i]!.size;
    out[pos] = 0;
    out.writeUInt32BE(size, pos + 1);
    pos += 5;
    for (let i = start; i < end; i++) {
      const f = batch[i]!;
      out[pos++] = 0x0a; // field 1 (frames), length-delimited
      out.set(f.field.data, pos);
      pos += f.size;
    }
  });
  return out;
}

/** Ends a hand-framed stream as its protocol says: Connect's end-stream message, gRPC's trailers, gRPC-Web's trailer message. */
export function writeEnd(wire: Wire, protocol: Protocol, error: ConnectError | undefined): void {
  if (protocol === "connect") {
    const json = Buffer.from(JSON.stringify(error ? { error: { code: codeToString(error.code), message: error.rawMessage } } : {}));
    wire.end(prefixed(0x02, json));
  } else if (protocol === "grpc") {
    wire.end(undefined, { "grpc-status": String(error?.code ?? 0), ...(error ? { "grpc-message": encodeURIComponent(error.rawMessage) } : {}) });
  } else {
    const text = `grpc-status: ${error?.code ?? 0}\r\n${error ? `grpc-message: ${encodeURIComponent(error.rawMessage)}\r\n` : ""}`;
    wire.end(prefixed(0x80, Buffer.from(text)));
  }
}

/** One envelope: [flags][u32 length][body]. */
export function prefixed(flags: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = flags;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type * as http from "node:http";
import { ConnectRequestSchema, ListenRequestSchema } from "../../../gen/chorus/v1/realtime_pb.js";
import type { OutboundFrame } from "../frames.js";
import type { FrameSink } from "../outbox.js";
import type { ChorusNode } from "../node.js";
import type { Session, SessionKind } from "../session.js";
import type { H2Stream } from "./h2/stream.js";

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
type Protocol = "connect" | "grpc" | "grpc-web";
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
  if (h["connect-timeout-ms"] || h["grpc-timeout"]) return undefined;
  for (const encoding of [h["connect-content-encoding"], h["grpc-encoding"]]) {
    if (encoding && encoding !== "identity") return undefined;
  }
  const contentType = h["content-type"];
  switch (contentType) {
    case "application/connect+proto":
      // Bidi needs HTTP/2; connect-node answers HTTP/1.1 attempts with 505.
      return kind === "listen" || http2 ? { kind, protocol: "connect", contentType } : undefined;
    case "application/grpc":
    case "application/grpc+proto":
      return http2 ? { kind, protocol: "grpc", contentType } : undefined;
    case "application/grpc-web+proto":
      return kind === "listen" || http2 ? { kind, protocol: "grpc-web", contentType } : undefined;
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
  respond(contentType: string): void;
  write(chunk: Buffer): boolean;
  end(chunk: Buffer | undefined, trailers?: Record<string, string>): void;
  /** Reports drain and close to `to`. */
  watch(to: WireListener): void;
  /** Starts reading the request body into `to`. */
  read(to: WireListener): void;
  /** Stops delivering the body (after a protocol error) but keeps draining it. */
  discard(to: WireListener): void;
}

/** HTTP/2: the stream of Chorus' own HTTP/2 connection. */
export class H2Wire implements Wire {
  constructor(private readonly stream: H2Stream) {}

  respond(contentType: string): void {
    // Trailers need no announcement in HTTP/2: end() sends them or not.
    this.stream.respond([
      [":status", "200"],
      ["content-type", contentType],
    ]);
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
}

/** HTTP/1.1 (browsers): the server's request and response. */
export class Http1Wire implements Wire {
  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
  ) {}

  respond(contentType: string): void {
    this.res.writeHead(200, { "content-type": contentType });
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
}

/** Serves one session stream: `authorization` is the request's header, if any. */
export function serveSessionStream(node: ChorusNode, wire: Wire, route: SessionRoute, authorization: string | undefined): void {
  new SessionStream(node, wire, route).start(authorization);
}

const NO_BYTES = Buffer.alloc(0);
const SETTLED: Promise<void> = Promise.resolve();

/**
 * One session stream: identifies the caller, opens its session, splits the
 * request body into envelopes and is the sink its outbox writes into. One
 * object per connection, with four listeners, because idle connections are
 * what a server holds most of.
 */
class SessionStream implements FrameSink {
  private session: Session | undefined;
  /** Nothing more may be written: ended by us, or closed by the client. */
  private finished = false;
  /** Unread bytes of the request body. */
  private pending: Buffer = NO_BYTES;
  private failed = false;
  private listenRequests = 0;
  /** Connect frames run one after another, in arrival order. */
  private chain = SETTLED;

  constructor(
    private readonly node: ChorusNode,
    private readonly wire: Wire,
    private readonly route: SessionRoute,
  ) {}

  start(authorization: string | undefined): void {
    this.wire.respond(this.route.contentType);
    this.wire.watch(this);
    // The body waits (paused) until the caller is known.
    this.node.identify(new Headers(authorization ? { authorization } : {})).then(
      (identity) => {
        if (this.finished) return;
        try {
          this.session = this.node.openSession(identity, this.route.kind);
        } catch (error) {
          return this.finish(ConnectError.from(error));
        }
        this.session.outbox.attach(this);
        this.wire.read(this);
      },
      (error: unknown) => this.finish(ConnectError.from(error)),
    );
  }

  // ---- FrameSink: the outbox writes here ----

  write(batch: OutboundFrame[]): boolean {
    return this.finished ? true : this.wire.write(envelope(batch));
  }

  end(error: ConnectError | undefined): void {
    this.finish(error);
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
    let pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const limit = this.node.config.maxPayloadBytes * 2 + 64 * 1024;
    try {
      while (pending.length >= 5) {
        const flags = pending[0]!;
        const length = pending.readUInt32BE(1);
        if (length > limit) throw new ConnectError(`message of ${length} bytes exceeds the limit of ${limit}`, Code.ResourceExhausted);
        if (pending.length < 5 + length) break;
        if (flags & 0x01) throw new ConnectError("compressed messages are not accepted", Code.Unimplemented);
        const body = pending.subarray(5, 5 + length);
        pending = pending.subarray(5 + length);
        if (!(flags & 0x02)) this.message(body); // 0x02: a client end-of-stream marker carries no message
      }
      this.pending = pending.length ? pending : NO_BYTES;
    } catch (error) {
      const e = ConnectError.from(error);
      this.fail(e.code === Code.Unknown || e.code === Code.Internal ? new ConnectError(`malformed frame: ${e.rawMessage}`, Code.InvalidArgument) : e);
    }
  };

  readonly onEnd = (): void => {
    if (this.failed) return;
    if (this.pending.length > 0) return this.fail(new ConnectError("request ended inside a message", Code.InvalidArgument));
    // Listen: the request is done, the stream goes on. Connect: the client
    // closed its side; finish what is queued, then end.
    const session = this.session!;
    if (this.route.kind === "connect") void this.chain.then(() => session.close());
  };

  private message(body: Uint8Array): void {
    const session = this.session!;
    if (this.route.kind === "listen") {
      if (++this.listenRequests > 1) throw new ConnectError("Listen takes exactly one request message", Code.InvalidArgument);
      fromBinary(ListenRequestSchema, body);
      return;
    }
    const frame = fromBinary(ConnectRequestSchema, body);
    this.chain = this.chain.then(() => (session.isClosed ? undefined : session.handleFrame(frame)));
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
    writeEnd(this.wire, this.route.protocol, error);
  }
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

function writeEnd(wire: Wire, protocol: Protocol, error: ConnectError | undefined): void {
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

function prefixed(flags: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = flags;
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Readable } from "node:stream";
import { ConnectRequestSchema, ListenRequestSchema } from "../../../gen/chorus/v1/realtime_pb.js";
import type { OutboundFrame } from "../frames.js";
import type { ChorusNode } from "../node.js";
import type { Session, SessionKind } from "../session.js";

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
}

const PATHS: Record<string, SessionKind> = {
  "/chorus.v1.RealtimeService/Connect": "connect",
  "/chorus.v1.RealtimeService/Listen": "listen",
};

/** The route for a request this path serves, or undefined to leave it to connect-node. */
export function sessionStreamRoute(method: string | undefined, path: string | undefined, h: http.IncomingHttpHeaders, http2: boolean): SessionRoute | undefined {
  const kind = PATHS[path ?? ""];
  if (!kind || method !== "POST") return undefined;
  if (h["connect-timeout-ms"] || h["grpc-timeout"]) return undefined;
  for (const encoding of [h["connect-content-encoding"], h["grpc-encoding"]]) {
    if (encoding && encoding !== "identity") return undefined;
  }
  switch (h["content-type"]) {
    case "application/connect+proto":
      // Bidi needs HTTP/2; connect-node answers HTTP/1.1 attempts with 505.
      return kind === "listen" || http2 ? { kind, protocol: "connect" } : undefined;
    case "application/grpc":
    case "application/grpc+proto":
      return http2 ? { kind, protocol: "grpc" } : undefined;
    case "application/grpc-web+proto":
      return kind === "listen" || http2 ? { kind, protocol: "grpc-web" } : undefined;
    default:
      return undefined;
  }
}

/** What a session stream needs from HTTP, whichever version carries it. */
export interface Wire {
  readonly headers: http.IncomingHttpHeaders;
  /** The request body. */
  readonly body: Readable;
  /** Sends the response headers now (fetch and proxies treat a stream without them as hung). */
  respond(contentType: string, withTrailers: boolean): void;
  write(chunk: Buffer): boolean;
  end(chunk: Buffer | undefined, trailers?: Record<string, string>): void;
  onDrain(callback: () => void): void;
  onClose(callback: () => void): void;
}

/** An HTTP/2 stream used directly: no compatibility request and response objects per session. */
export function http2Wire(stream: http2.ServerHttp2Stream, headers: http.IncomingHttpHeaders): Wire {
  stream.on("error", () => {}); // a reset stream closes; 'close' cleans up
  return {
    headers,
    body: stream,
    respond: (contentType, withTrailers) => stream.respond({ ":status": 200, "content-type": contentType }, { waitForTrailers: withTrailers }),
    write: (chunk) => stream.write(chunk),
    end(chunk, trailers) {
      if (trailers) stream.once("wantTrailers", () => stream.sendTrailers(trailers));
      stream.end(chunk);
    },
    onDrain: (callback) => stream.on("drain", callback),
    onClose: (callback) => stream.once("close", callback),
  };
}

/** HTTP/1.1 (browsers): the server's request and response. */
export function http1Wire(req: http.IncomingMessage, res: http.ServerResponse): Wire {
  return {
    headers: req.headers,
    body: req,
    respond(contentType) {
      res.writeHead(200, { "content-type": contentType });
      res.flushHeaders();
    },
    write: (chunk) => res.write(chunk),
    end(chunk, trailers) {
      if (trailers) res.addTrailers(trailers);
      res.end(chunk);
    },
    onDrain: (callback) => res.on("drain", callback),
    onClose: (callback) => res.once("close", callback),
  };
}

export function serveSessionStream(node: ChorusNode, wire: Wire, route: SessionRoute): void {
  const { protocol } = route;
  wire.respond(wire.headers["content-type"]!, protocol === "grpc");

  let session: Session | undefined;
  let finished = false;
  const finish = (error: ConnectError | undefined) => {
    if (finished) return;
    finished = true;
    writeEnd(wire, protocol, error);
  };
  wire.onClose(() => {
    finished = true; // the client left: nothing more can be written
    session?.close();
  });

  // The body waits (paused) until the caller is known.
  node.identify(authorizationOf(wire.headers)).then(
    (identity) => {
      if (finished) return;
      try {
        session = node.openSession(identity, route.kind);
      } catch (error) {
        return finish(ConnectError.from(error));
      }
      run(session);
    },
    (error: unknown) => finish(ConnectError.from(error)),
  );

  const run = (s: Session) => {
  wire.onDrain(() => s.outbox.resume());
  s.outbox.attach({
    write: (batch) => (finished ? true : wire.write(envelope(batch))),
    end: (error) => finish(error),
  });

  const readLimit = node.config.maxPayloadBytes * 2 + 64 * 1024;
  let chain: Promise<void> = Promise.resolve();
  let listenRequests = 0;
  readEnvelopes(wire.body, readLimit, {
    message(body) {
      if (route.kind === "listen") {
        if (++listenRequests > 1) throw new ConnectError("Listen takes exactly one request message", Code.InvalidArgument);
        fromBinary(ListenRequestSchema, body);
        return;
      }
      const frame = fromBinary(ConnectRequestSchema, body);
      // Frames run one after another, in arrival order.
      chain = chain.then(() => (s.isClosed ? undefined : s.handleFrame(frame)));
    },
    end() {
      // Listen: the request is done, the stream goes on. Connect: the client
      // closed its side; finish what is queued, then end.
      if (route.kind === "connect") void chain.then(() => s.close());
    },
    error(error) {
      s.close(error);
    },
  });
  };
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

/** One data envelope holding a ConnectResponse/ListenResponse made of pre-encoded frames. */
function envelope(batch: OutboundFrame[]): Buffer {
  if (sameFrames(batch, lastBatch)) return lastEnvelope;
  lastBatch = batch;
  lastEnvelope = buildEnvelope(batch);
  return lastEnvelope;
}

function buildEnvelope(batch: OutboundFrame[]): Buffer {
  let size = 0;
  for (const f of batch) size += 1 + f.size;
  const out = Buffer.allocUnsafe(5 + size);
  out[0] = 0;
  out.writeUInt32BE(size, 1);
  let pos = 5;
  for (const f of batch) {
    out[pos++] = 0x0a; // field 1 (frames), length-delimited
    out.set(f.field.data, pos);
    pos += f.size;
  }
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

/** Splits the request body into envelopes; any violation ends the session with its code. */
function readEnvelopes(
  req: Readable,
  limit: number,
  on: { message(body: Uint8Array): void; end(): void; error(e: ConnectError): void },
): void {
  let pending: Buffer = Buffer.alloc(0);
  let failed = false;
  const fail = (e: ConnectError) => {
    if (failed) return;
    failed = true;
    req.removeAllListeners("data");
    req.resume();
    on.error(e);
  };
  req.on("data", (chunk: Buffer) => {
    if (failed) return;
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    try {
      while (pending.length >= 5) {
        const flags = pending[0]!;
        const length = pending.readUInt32BE(1);
        if (length > limit) throw new ConnectError(`message of ${length} bytes exceeds the limit of ${limit}`, Code.ResourceExhausted);
        if (pending.length < 5 + length) break;
        if (flags & 0x01) throw new ConnectError("compressed messages are not accepted", Code.Unimplemented);
        const body = pending.subarray(5, 5 + length);
        pending = pending.subarray(5 + length);
        if (!(flags & 0x02)) on.message(body); // 0x02: a client end-of-stream marker carries no message
      }
    } catch (error) {
      const e = ConnectError.from(error);
      fail(e.code === Code.Unknown || e.code === Code.Internal ? new ConnectError(`malformed frame: ${e.rawMessage}`, Code.InvalidArgument) : e);
    }
  });
  req.on("end", () => {
    if (failed) return;
    if (pending.length > 0) return fail(new ConnectError("request ended inside a message", Code.InvalidArgument));
    on.end();
  });
}

/** Identity needs the credentials only: no full header copy per session. */
function authorizationOf(headers: http.IncomingHttpHeaders): Headers {
  const value = headers.authorization;
  return new Headers(value ? { authorization: value } : {});
}

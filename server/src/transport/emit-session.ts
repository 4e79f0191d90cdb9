import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { EmitSessionRequestSchema, EmitSessionResponseSchema } from "../../../gen/chorus/v1/server_pb.js";
import type { ChorusNode } from "../node.js";
import { plainStreamFraming, prefixed, writeEnd, type Protocol, type Wire, type WireListener } from "./session-stream.js";

const PATH = "/chorus.v1.ServerService/EmitSession";
const NO_BYTES = Buffer.alloc(0);

/** The framing of an EmitSession request this path serves (HTTP/2, plain binary), or undefined to leave it to connect-node. */
export function emitSessionRoute(method: string | undefined, path: string, h: Record<string, string | string[] | undefined>, http2: boolean): { protocol: Protocol; contentType: string } | undefined {
  if (path !== PATH || method !== "POST" || !http2) return undefined;
  return plainStreamFraming(h, http2, false);
}

/**
 * A back end's EmitSession stream framed by hand, as the session streams
 * are: each batch decoded as its envelope completes and issued at once
 * (its events take their positions in arrival order, as EmitMany's do),
 * answers written in that order. No async iterable, no promise per
 * envelope beyond the batch's own.
 *
 * Bounded like a session: batches issued and not yet answered (past the
 * in-flight limit the request is not read, and flow control makes the
 * client wait), and one envelope's bytes (the read limit).
 */
export function serveEmitSession(node: ChorusNode, wire: Wire, framing: { protocol: Protocol; contentType: string }, authorization: string | undefined, readMaxBytes: number): void {
  let scope: string;
  wire.respond(framing.contentType);
  let header: Headers;
  try {
    header = new Headers(authorization ? { authorization } : {});
  } catch {
    return writeEnd(wire, framing.protocol, new ConnectError("the authorization header holds characters no header may hold", Code.Unauthenticated));
  }
  try {
    scope = node.apiKeys.check(header);
  } catch (error) {
    return writeEnd(wire, framing.protocol, ConnectError.from(error));
  }
  const stream = new EmitSessionStream(node, wire, framing.protocol, scope, readMaxBytes);
  wire.watch(stream);
  wire.read(stream);
}

class EmitSessionStream implements WireListener {
  private pending: Buffer = NO_BYTES;
  /** Answers go out in the order their batches came. */
  private chain: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private readPaused = false;
  private waitingForDrain = false;
  private bodyEnded = false;
  /** Nothing more is read: the request ended, or broke a rule. */
  private stopped = false;
  /** The client is gone: nothing more is written. */
  private closed = false;
  /** A batch failed unanswered: no later answer may be written in its place (the client fails those batches). */
  private broken = false;
  private failed = false;

  constructor(
    private readonly node: ChorusNode,
    private readonly wire: Wire,
    private readonly protocol: Protocol,
    private readonly scope: string,
    private readonly readMaxBytes: number,
  ) {}

  readonly onData = (chunk: Buffer): void => {
    if (this.stopped) return;
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.parse();
  };

  readonly onEnd = (): void => {
    this.bodyEnded = true;
    this.parse();
  };

  readonly onDrain = (): void => {
    this.waitingForDrain = false;
    this.resumeIfRoom();
  };

  readonly onClose = (): void => {
    this.closed = this.stopped = true;
  };

  private parse(): void {
    let pending = this.pending;
    try {
      while (pending.length >= 5 && !this.readPaused && !this.stopped) {
        const flags = pending[0]!;
        const length = pending.readUInt32BE(1);
        if (flags & 0x01) throw new ConnectError("compressed messages are not accepted", Code.Unimplemented);
        if (length > this.readMaxBytes) throw new ConnectError(`message of ${length} bytes exceeds the limit of ${this.readMaxBytes}`, Code.ResourceExhausted);
        if (pending.length < 5 + length) break;
        const body = pending.subarray(5, 5 + length);
        pending = pending.subarray(5 + length);
        if (!(flags & 0x02)) this.batch(fromBinary(EmitSessionRequestSchema, body)); // 0x02: an end-of-stream marker
      }
      this.pending = pending.length ? pending : NO_BYTES;
    } catch (error) {
      const e = ConnectError.from(error);
      return this.fail(e.code === Code.Unknown || e.code === Code.Internal ? new ConnectError(`malformed message: ${e.rawMessage}`, Code.InvalidArgument) : e);
    }
    if (this.bodyEnded && !this.readPaused && !this.stopped) {
      if (this.pending.length > 0) return this.fail(new ConnectError("request ended inside a message", Code.InvalidArgument));
      this.stopped = true;
      this.chain = this.chain.then(() => this.end(undefined)).catch(this.endFailed);
    }
  }

  private batch(request: Parameters<ChorusNode["emitBatch"]>[0]): void {
    const answer = this.node.emitBatch(request, this.scope);
    if (++this.inFlight >= this.node.config.maxInFlightCommands) this.pauseReading();
    this.chain = this.chain
      .then(() => answer)
      .then((results) => {
        this.inFlight--;
        if (this.closed || this.broken) return;
        if (!this.wire.write(prefixed(0, toBinary(EmitSessionResponseSchema, create(EmitSessionResponseSchema, { results }))))) {
          this.waitingForDrain = true;
          this.pauseReading();
        }
        this.resumeIfRoom();
      })
      .catch((error: unknown) => {
        this.node.logError("an emit session failed", error);
        this.broken = true;
        this.fail(new ConnectError("internal error", Code.Internal));
      });
  }

  private pauseReading(): void {
    if (this.readPaused) return;
    this.readPaused = true;
    this.wire.pauseReading();
  }

  private resumeIfRoom(): void {
    if (!this.readPaused || this.waitingForDrain || this.inFlight > this.node.config.maxInFlightCommands / 2 || this.stopped) return;
    this.readPaused = false;
    this.wire.resumeReading();
    this.parse();
  }

  /** Stops reading; the stream ends with `error` once the batches issued before are answered. */
  private fail(error: ConnectError): void {
    if (this.failed) return;
    this.failed = this.stopped = true;
    this.pending = NO_BYTES;
    this.wire.discard(this);
    this.chain = this.chain.then(() => this.end(error)).catch(this.endFailed);
  }

  /** Ending the stream failed (ours): logged, and the stream cut off; nothing reaches the process. */
  private readonly endFailed = (error: unknown): void => {
    this.node.logError("an emit session failed to end", error);
    this.wire.abort();
  };

  private end(error: ConnectError | undefined): void {
    if (!this.closed) writeEnd(this.wire, this.protocol, error);
  }
}

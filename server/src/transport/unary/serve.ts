import { Code, ConnectError } from "@connectrpc/connect";
import type * as http from "node:http";
import { H2_ERROR } from "../h2/connection.js";
import type { HeaderField } from "../h2/hpack.js";
import type { RequestHead, ServerStream, StreamListener } from "../server-stream.js";
import { answerCall, refusal, type CallInfo, type UnaryAnswer, type UnaryMethod } from "./call.js";
import { unaryProtocol, type UnaryProtocol } from "./route.js";

export interface UnaryServerOptions {
  /** Request messages larger than this are refused with RESOURCE_EXHAUSTED (connect's readMaxBytes). */
  readMaxBytes: number;
  /** A failure of ours while serving a call, for the log. */
  onError(error: unknown, context: string): void;
}

/**
 * Serves the unary methods of the services on the lean path, over
 * HTTP/2 streams and HTTP/1.1 requests (see README.md).
 */
export class UnaryServer {
  constructor(
    private readonly methods: ReadonlyMap<string, UnaryMethod>,
    private readonly options: UnaryServerOptions,
  ) {}

  /** The method a request calls when the lean path takes it; undefined leaves it to connect. */
  route(method: string | undefined, path: string, headers: RequestHead["headers"] | http.IncomingHttpHeaders, http2: boolean): { m: UnaryMethod; protocol: UnaryProtocol } | undefined {
    const m = this.methods.get(path);
    if (!m) return undefined;
    const protocol = unaryProtocol(method, headers, http2);
    return protocol && { m, protocol };
  }

  serveH2(stream: ServerStream, head: RequestHead, route: { m: UnaryMethod; protocol: UnaryProtocol }, extraHeaders: Record<string, string> | undefined): void {
    const call = new H2Call(this, stream, route.m, { protocol: route.protocol, headers: head.headers, authority: head.authority }, extraHeaders);
    stream.listen(call);
    stream.resume();
  }

  serveH1(req: http.IncomingMessage, res: http.ServerResponse, route: { m: UnaryMethod; protocol: UnaryProtocol }): void {
    const call: CallInfo = { protocol: route.protocol, headers: req.headers, authority: req.headers.host ?? "" };
    const body = new BodyCollector(this.options.readMaxBytes, route.protocol);
    const respond = (answer: UnaryAnswer) => {
      if (res.writableEnded || res.destroyed) return;
      const headers: Record<string, string> = {};
      for (const [name, value] of answer.headers) headers[name] = value;
      res.writeHead(answer.status, headers);
      res.end(answer.body);
    };
    req.on("error", ignore); // a client gone mid-request: 'close' follows, and there is nobody to answer
    req.on("data", (chunk: Buffer) => {
      const refused = body.add(chunk);
      if (!refused) return;
      // The rest of the body is not read: the connection closes after the answer.
      res.shouldKeepAlive = false;
      req.removeAllListeners("data");
      req.removeAllListeners("end");
      req.resume();
      respond(refused);
    });
    req.on("end", () => {
      // Writing the answer runs outside the listener's boundary: a throw there ends this request, never the process.
      this.answer(route.m, call, body.take(), `${req.url}`)
        .then(respond)
        .catch((error: unknown) => {
          this.options.onError(error, `answering ${req.url}`);
          res.destroy();
        });
    });
  }

  /** The call's answer (for H2Call); never rejects. */
  answer(m: UnaryMethod, call: CallInfo, body: Buffer, path: string): Promise<UnaryAnswer> {
    return answerCall(m, call, body, this.options.readMaxBytes, (error) => this.options.onError(error, `serving ${path}`));
  }

  /** A failure of ours while writing an answer (for H2Call): logged, and the exchange cut off. */
  failed(error: unknown, what: string, cutOff: () => void): void {
    this.options.onError(error, `answering ${what}`);
    cutOff();
  }

  /** The read limit (for H2Call). */
  get readMaxBytes(): number {
    return this.options.readMaxBytes;
  }
}

const EMPTY = Buffer.alloc(0);
const ignore = () => {};

/** A request body gathered whole, refused as soon as it is larger than a message may be. */
class BodyCollector {
  private chunks: Buffer[] | undefined;
  private first: Buffer = EMPTY;
  private bytes = 0;
  private readonly limit: number;

  constructor(
    private readonly readMaxBytes: number,
    private readonly protocol: UnaryProtocol,
  ) {
    // gRPC's envelope adds 5 bytes to the message it carries.
    this.limit = protocol === "connect" ? readMaxBytes : readMaxBytes + 5;
  }

  /** Adds a chunk; returns the answer refusing the request when the body has grown too large. */
  add(chunk: Buffer): UnaryAnswer | undefined {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) return refusal(this.protocol, new ConnectError(`message size is larger than configured readMaxBytes ${this.readMaxBytes}`, Code.ResourceExhausted));
    if (this.first.length === 0) this.first = chunk;
    else (this.chunks ??= [this.first]).push(chunk);
    return undefined;
  }

  take(): Buffer {
    return this.chunks ? Buffer.concat(this.chunks, this.bytes) : this.first;
  }
}

/** One call on an HTTP/2 stream: the stream's listener while the request arrives, then its writer. */
class H2Call implements StreamListener {
  private readonly body: BodyCollector;
  private settled = false;

  constructor(
    private readonly server: UnaryServer,
    private readonly stream: ServerStream,
    private readonly m: UnaryMethod,
    private readonly call: CallInfo,
    private readonly extraHeaders: Record<string, string> | undefined,
  ) {
    this.body = new BodyCollector(server.readMaxBytes, call.protocol);
  }

  onData(chunk: Buffer): void {
    if (this.settled) return;
    const refused = this.body.add(chunk);
    if (!refused) return;
    this.settled = true;
    this.stream.discard();
    this.respond(refused);
  }

  onEnd(): void {
    if (this.settled) return;
    this.settled = true;
    this.server
      .answer(this.m, this.call, this.body.take(), this.m.method.name)
      .then((answer) => this.respond(answer))
      .catch((error: unknown) => this.server.failed(error, this.m.method.name, () => this.stream.reset(H2_ERROR.INTERNAL_ERROR)));
  }

  onDrain(): void {}

  onClose(): void {
    // A client that leaves before its request is whole gets no answer; one that leaves after gets none it can read.
    this.settled = true;
  }

  private respond(answer: UnaryAnswer): void {
    const stream = this.stream;
    if (stream.isClosed) return;
    const fields: HeaderField[] = [[":status", String(answer.status)], ...answer.headers];
    if (this.extraHeaders) for (const name in this.extraHeaders) fields.push([name, this.extraHeaders[name]!]);
    if (answer.body === undefined) return stream.respond(fields, true);
    stream.respond(fields);
    stream.end(answer.body, answer.trailers);
  }
}

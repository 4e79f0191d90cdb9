import { create, fromBinary, toBinary, type DescMethodUnary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import type * as http2 from "node:http2";
import { resetError, transportError } from "./h2-errors.js";
import type { H2Target } from "./h2-target.js";

/**
 * Connect unary calls (binary) straight on the HTTP/2 session a back end
 * keeps with its server: one request stream written whole, one response
 * read whole. The SDK's hot calls (emit, emitMany, sendTo) go this way;
 * connect's client, with its per-call signals, async iterables and header
 * objects, costs a busy back end several times more per call. The wire is
 * the Connect protocol's, and the session (connection, keep-alive pings,
 * reconnection) is connect-node's Http2SessionManager, shared with the
 * SDK's other calls.
 */
export class UnaryClient {
  constructor(
    private readonly target: H2Target,
    private readonly headers: Readonly<Record<string, string>>,
  ) {}

  call<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, input: MessageInitShape<I>): Promise<MessageShape<O>> {
    const body = toBinary(method.input, create(method.input, input));
    const path = this.target.path(`${method.parent.typeName}/${method.name}`);
    const headers = { "content-type": "application/proto", "connect-protocol-version": "1", ...this.headers };
    const sessions = this.target.sessions;
    return sessions.request("POST", path, headers, {}).then(
      (stream) => new Promise<MessageShape<O>>((resolve, reject) => new Exchange(sessions, stream, method.output, resolve, reject).send(body)),
      (error: unknown) => Promise.reject(transportError(error)),
    );
  }
}

/** One call's stream: its response gathered, then decoded or turned into the error it reports. */
class Exchange<O extends DescMessage> {
  private status = 0;
  private contentType = "";
  private readonly chunks: Buffer[] = [];
  private settled = false;

  constructor(
    sessions: Http2SessionManager,
    private readonly stream: http2.ClientHttp2Stream,
    private readonly output: O,
    private readonly resolve: (message: MessageShape<O>) => void,
    private readonly reject: (error: ConnectError) => void,
  ) {
    stream.on("response", (headers) => {
      this.status = Number(headers[":status"]);
      this.contentType = String(headers["content-type"] ?? "");
    });
    stream.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk);
      sessions.notifyResponseByteRead(stream);
    });
    stream.on("end", () => this.finish());
    stream.on("error", (error) => this.fail(transportError(error)));
    stream.on("close", () => {
      if (!this.settled) this.fail(resetError(stream.rstCode));
    });
  }

  send(body: Uint8Array): void {
    this.stream.end(body);
  }

  private finish(): void {
    if (this.settled) return;
    const bytes = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    if (this.status === 200 && this.contentType === "application/proto") {
      try {
        this.settled = true;
        return this.resolve(fromBinary(this.output, bytes));
      } catch (error) {
        return this.reject(new ConnectError(`the server's answer does not decode: ${String(error)}`, Code.Internal));
      }
    }
    const fallback = new ConnectError(`HTTP ${this.status}`, codeFromHttpStatus(this.status));
    let error: ConnectError;
    try {
      error = this.contentType.startsWith("application/json") ? errorFromJsonBytes(bytes, undefined, fallback) : fallback;
    } catch {
      error = fallback;
    }
    this.fail(error);
  }

  private fail(error: ConnectError): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(error);
  }
}

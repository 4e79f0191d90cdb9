import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import type * as http2 from "node:http2";
import { END_STREAM, EnvelopeReader } from "./envelopes.js";
import { resetError, transportError } from "./h2-errors.js";
import type { H2Target } from "./h2-target.js";

const NGHTTP2_CANCEL = 8;
const CONTENT_TYPE = "application/connect+proto";

export interface ConnectStreamHandler {
  /** One message of the response; false stops reading (the handler has ended things itself). */
  onMessage(body: Buffer): boolean;
  /** The call is over, once: undefined after the server's clean end of stream, else why it ended. */
  onEnd(error: ConnectError | undefined): void;
}

/**
 * One Connect streaming call (binary) on an HTTP/2 session, framed by
 * hand: messages written as they come (held until the stream opens),
 * messages read as they arrive, the end of stream read from Connect's
 * end-of-stream message, HTTP/2 resets and connection failures turned into
 * the codes connect's clients give them.
 */
export class ConnectStream {
  private stream: http2.ClientHttp2Stream | undefined;
  private queued: Buffer[] = [];
  private halfClosed = false;
  private done = false;
  private status = 0;
  private contentType = "";
  private readonly reader = new EnvelopeReader((flags, body) => this.envelope(flags, body));

  constructor(target: H2Target, method: string, headers: Readonly<Record<string, string>>, private readonly handler: ConnectStreamHandler) {
    const sessions = target.sessions;
    sessions.request("POST", target.path(method), { "content-type": CONTENT_TYPE, "connect-protocol-version": "1", ...headers }, {}).then(
      (stream) => {
        if (this.done) return void stream.close(NGHTTP2_CANCEL);
        this.stream = stream;
        stream.on("response", (head) => {
          this.status = Number(head[":status"]);
          this.contentType = String(head["content-type"] ?? "");
        });
        stream.on("data", (chunk: Buffer) => {
          sessions.notifyResponseByteRead(stream);
          this.reader.push(chunk);
        });
        // After the end-of-stream message this changes nothing; without it, the call was cut off.
        stream.on("end", () => this.finish(this.status === 200 ? new ConnectError("the stream ended without its end-of-stream message", Code.Unavailable) : new ConnectError(`the server answered HTTP ${this.status}`, codeFromHttpStatus(this.status))));
        stream.on("error", (error) => this.finish(transportError(error)));
        stream.on("close", () => this.finish(resetError(stream.rstCode)));
        for (const chunk of this.queued) stream.write(chunk);
        this.queued = [];
        if (this.halfClosed) stream.end();
      },
      (error: unknown) => this.finish(transportError(error)),
    );
  }

  /** Whether the request stream opened: what was written may have reached the server. */
  get opened(): boolean {
    return this.stream !== undefined;
  }

  write(chunk: Buffer): void {
    if (this.done || this.halfClosed) return;
    if (this.stream) this.stream.write(chunk);
    else this.queued.push(chunk);
  }

  /** Ends our side: the server answers what it has, then ends its own. */
  end(): void {
    if (this.halfClosed || this.done) return;
    this.halfClosed = true;
    this.stream?.end();
  }

  /** Stops reading (flow control holds the server) until resume(). */
  pause(): void {
    this.stream?.pause();
  }

  resume(): void {
    if (this.stream?.isPaused()) this.stream.resume();
  }

  /** Ends the call here and now; the handler hears `error` (undefined: a clean end). */
  close(error?: ConnectError): void {
    this.finish(error);
  }

  private envelope(flags: number, body: Buffer): boolean {
    if (this.done) return false;
    if (flags & END_STREAM) {
      let error: ConnectError | undefined;
      try {
        const end = JSON.parse(body.toString("utf8")) as { error?: unknown };
        if (end.error) error = errorFromJsonBytes(Buffer.from(JSON.stringify(end.error)), undefined, new ConnectError("the call failed", Code.Unknown));
      } catch {
        error = new ConnectError("the server's end of stream does not decode", Code.Internal);
      }
      this.finish(error);
      return false;
    }
    if (this.status !== 200 || this.contentType !== CONTENT_TYPE) {
      this.finish(new ConnectError(`unexpected answer from the server (HTTP ${this.status}, ${this.contentType})`, Code.Internal));
      return false;
    }
    return this.handler.onMessage(body);
  }

  private finish(error: ConnectError | undefined): void {
    if (this.done) return;
    this.done = true;
    this.queued = [];
    const stream = this.stream;
    if (stream && !stream.closed) {
      if (error) stream.close(NGHTTP2_CANCEL);
      else stream.end();
    }
    this.handler.onEnd(error);
  }
}

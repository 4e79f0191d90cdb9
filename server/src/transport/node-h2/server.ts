import * as http2 from "node:http2";
import type { HeaderField } from "../h2/hpack.js";
import type { H2Limits } from "../h2/connection.js";
import type { RequestHead, ServerStream, StreamListener } from "../server-stream.js";

/**
 * The escape hatch (CHORUS_HTTP2=node): cleartext HTTP/2 served by Node's
 * `http2` module (nghttp2) instead of Chorus' own, behind the same routes.
 * Each Node stream is adapted to ServerStream, so the session streams keep
 * their hand-framed writes and every other call its universal handler.
 * It is also the A/B baseline the benchmark and the conformance suite
 * measure Chorus' own server against.
 */

export interface NodeH2Hooks {
  onRequest(stream: ServerStream, head: RequestHead): void | Promise<void>;
  onError(error: unknown, context: string): void;
}

/** How long a liveness PING may go unanswered before the session is destroyed. */
const PING_TIMEOUT_MS = 10_000;

export function createNodeH2Server(hooks: NodeH2Hooks, limits: H2Limits): http2.Http2Server {
  const server = http2.createServer({
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderListSize,
      enablePush: false,
    },
    maxSettings: limits.maxSettingsPerFrame,
    maxSessionRejectedStreams: limits.resetBurst,
    maxSessionInvalidFrames: limits.emptyFrameBurst,
    // Response bodies wait in the session past this: a slow reader is then refused new streams.
    maxSessionMemory: 16,
  } as http2.ServerOptions);
  server.on("session", (session) => {
    session.on("error", () => {}); // Node destroys the session itself, after its GOAWAY
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {}); // resets and aborts arrive as 'close'; the handler sees them there
    const head = requestHead(headers);
    const adapted = new NodeH2Stream(stream, head.method === "HEAD", hooks);
    try {
      const pending = hooks.onRequest(adapted, head);
      if (pending) pending.catch((error: unknown) => adapted.failed(error));
    } catch (error) {
      adapted.failed(error);
    }
  });
  return server;
}

function requestHead(headers: http2.IncomingHttpHeaders): RequestHead {
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    fields[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  const length = headers["content-length"];
  return {
    method: String(headers[":method"] ?? ""),
    path: String(headers[":path"] ?? ""),
    scheme: String(headers[":scheme"] ?? ""),
    authority: String(headers[":authority"] ?? headers.host ?? ""),
    headers: fields,
    contentLength: length === undefined ? undefined : Number(length),
  };
}

const toObject = (fields: readonly HeaderField[]): http2.OutgoingHttpHeaders => {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of fields) out[name] = value;
  return out;
};

/** A Node `ServerHttp2Stream` seen as a ServerStream. */
class NodeH2Stream implements ServerStream {
  private listener: StreamListener | undefined;
  private trailers: readonly HeaderField[] | undefined;
  private reading = false;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly bodyless: boolean,
    private readonly hooks: NodeH2Hooks,
  ) {}

  get isClosed(): boolean {
    return this.stream.closed || this.stream.destroyed;
  }

  get resetCode(): number | undefined {
    return this.stream.rstCode;
  }

  listen(listener: StreamListener): void {
    this.listener = listener;
    this.stream.on("end", () => this.safely(() => listener.onEnd()));
    this.stream.on("drain", () => this.safely(() => listener.onDrain()));
    this.stream.once("close", () => this.safely(() => listener.onClose()));
    this.stream.on("wantTrailers", () => {
      const fields = this.trailers ? toObject(this.trailers) : {};
      this.stream.sendTrailers(fields);
    });
  }

  resume(): void {
    if (!this.reading && this.listener) {
      this.reading = true;
      const listener = this.listener;
      this.stream.on("data", (chunk: Buffer) => this.safely(() => listener.onData(chunk)));
    }
    this.stream.resume();
  }

  pause(): void {
    this.stream.pause();
  }

  discard(): void {
    this.stream.removeAllListeners("data");
    this.stream.resume();
  }

  respond(fields: readonly HeaderField[], endStream = false): void {
    if (this.isClosed || this.stream.headersSent) return;
    // Trailers need waitForTrailers at respond time; end() decides whether any are sent.
    this.stream.respond(toObject(fields), { endStream, waitForTrailers: !endStream });
  }

  write(chunk: Buffer): boolean {
    if (this.isClosed || this.bodyless || this.stream.writableEnded) return true;
    return this.stream.write(chunk);
  }

  end(chunk?: Buffer, trailers?: readonly HeaderField[]): void {
    if (this.isClosed || this.stream.writableEnded) return;
    this.trailers = trailers;
    if (chunk?.length && !this.bodyless) this.stream.end(chunk);
    else this.stream.end();
  }

  reset(code: number): void {
    if (!this.stream.closed) this.stream.close(code);
  }

  probeConnection(): void {
    const session = this.stream.session;
    if (!session || session.destroyed) return;
    const timer = setTimeout(() => session.destroy(), PING_TIMEOUT_MS).unref();
    try {
      session.ping((error) => {
        clearTimeout(timer);
        if (error) session.destroy();
      });
    } catch {
      clearTimeout(timer);
    }
  }

  failed(error: unknown): void {
    this.hooks.onError(error, `serving stream ${this.stream.id}`);
    this.reset(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }

  private safely(call: () => void): void {
    try {
      call();
    } catch (error) {
      this.failed(error);
    }
  }
}

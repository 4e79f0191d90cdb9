import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { H2_ERROR } from "../h2/connection.js";
import type { HeaderField } from "../h2/hpack.js";
import type { RequestHead, ServerStream, StreamListener } from "../server-stream.js";
import { withAbort } from "./abort.js";
import { callUniversal } from "./call.js";

/** Chunks read ahead of the handler before the stream stops returning window to the peer. */
const READ_AHEAD = 4;

/**
 * A request served over HTTP/2 by one of connect's universal handlers
 * (unary calls, JSON sessions, everything but the hand-framed session
 * streams): the stream's body becomes the request's byte stream, the
 * handler's response goes out through the stream's windows. Rejects with
 * a handler's failure (after answering 500).
 */
export async function serveUniversal(stream: ServerStream, head: RequestHead, handler: UniversalHandler, extraHeaders: Record<string, string>): Promise<void> {
  let header: Headers;
  try {
    header = new Headers(head.headers);
  } catch {
    return stream.reset(H2_ERROR.PROTOCOL_ERROR); // a field value no HTTP header may hold
  }
  const exchange = new Exchange(stream);
  stream.listen(exchange);
  stream.resume();
  let response: UniversalServerResponse;
  try {
    response = await callUniversal(handler, {
      httpVersion: "2.0",
      method: head.method,
      url: `${head.scheme}://${head.authority}${head.path}`,
      header,
      body: exchange,
      signal: exchange.abort.signal,
      contextValues: withAbort(() => stream.reset(H2_ERROR.ENHANCE_YOUR_CALM)),
    });
  } catch (error) {
    respondPlain(stream, 500, {}, "");
    throw error;
  }
  await writeResponse(stream, exchange, response, extraHeaders);
}

/** A whole response given at once (health check, 404, CORS preflight). */
export function respondPlain(stream: ServerStream, status: number, headers: Record<string, string>, body: string): void {
  const bytes = Buffer.from(body);
  stream.respond([[":status", String(status)], ...fields(headers)], bytes.length === 0);
  if (bytes.length > 0) stream.end(bytes);
}

async function writeResponse(stream: ServerStream, exchange: Exchange, response: UniversalServerResponse, extraHeaders: Record<string, string>): Promise<void> {
  const body = response.body?.[Symbol.asyncIterator]();
  try {
    // Headers wait for the first message, so an error before it can still become a trailers-only response.
    let next = await body?.next();
    stream.respond([[":status", String(response.status)], ...fields(response.header), ...fields(extraHeaders)]);
    for (; next && !next.done; next = await body!.next()) {
      const chunk = next.value;
      if (!stream.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) await exchange.drained();
      if (stream.isClosed) return;
    }
    const trailer = fields(response.trailer);
    stream.end(undefined, trailer.length > 0 ? trailer : undefined);
  } catch (error) {
    await body?.throw?.(error).catch(() => {});
    stream.reset(H2_ERROR.INTERNAL_ERROR);
  } finally {
    await body?.return?.().catch(() => {});
  }
}

function fields(headers: Headers | Record<string, string> | undefined): HeaderField[] {
  if (!headers) return [];
  const out: HeaderField[] = [];
  if (headers instanceof Headers) headers.forEach((value, name) => out.push([name, value]));
  else for (const [name, value] of Object.entries(headers)) out.push([name, value]);
  return out;
}

/** The stream's listener for one universal exchange: its body as an async iterable, drain and close as wake-ups. */
class Exchange implements StreamListener, AsyncIterable<Uint8Array> {
  readonly abort = new AbortController();
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private closed = false;
  private wakeReader: (() => void) | undefined;
  private wakeWriter: (() => void) | undefined;

  constructor(private readonly stream: ServerStream) {}

  onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    if (this.chunks.length >= READ_AHEAD) this.stream.pause();
    this.wakeUp();
  }

  onEnd(): void {
    this.ended = true;
    this.wakeUp();
  }

  onDrain(): void {
    this.wakeUp();
  }

  onClose(): void {
    this.closed = true;
    const code = this.stream.resetCode;
    this.abort.abort(code === undefined || code === H2_ERROR.NO_ERROR ? undefined : new ConnectError(`stream reset by the client (HTTP/2 code ${code})`, code === H2_ERROR.CANCEL ? Code.Canceled : Code.Unavailable));
    this.wakeUp();
  }

  /** Resolves when the stream takes writes again, or is gone. */
  drained(): Promise<void> {
    return this.closed ? Promise.resolve() : new Promise((resolve) => (this.wakeWriter = resolve));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        if (this.chunks.length === 0) this.stream.resume();
        yield chunk;
        continue;
      }
      if (this.ended) return;
      if (this.closed) throw new ConnectError("the client closed the request", Code.Canceled);
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
    }
  }

  private wakeUp(): void {
    const reader = this.wakeReader;
    const writer = this.wakeWriter;
    this.wakeReader = this.wakeWriter = undefined;
    reader?.();
    writer?.();
  }
}

import { create, fromBinary, toBinary, type DescMessage, type DescMethodServerStreaming, type DescMethodUnary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";

/** Connect's end-of-stream envelope flag. */
const END_STREAM = 0x02;

/**
 * The Connect protocol over fetch, binary only, for the two exchanges a
 * browser session makes: unary calls (its commands) and one server stream
 * (Listen). connect-web's transport does the same with JSON serialisation,
 * interceptors and per-call machinery a session never uses; writing the two
 * exchanges here keeps those, and the protobuf runtime's JSON codecs, out
 * of an app's bundle. The wire is exactly Connect's.
 */
export class FetchCalls {
  private readonly baseUrl: string;

  constructor(baseUrl: string) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<MessageShape<O>> {
    const response = await this.post(method, "application/proto", toBinary(method.input, create(method.input, input)), headers, signal);
    const body = new Uint8Array(await read(response.arrayBuffer(), signal));
    if (response.status === 200 && (response.headers.get("content-type") ?? "").startsWith("application/proto")) return fromBinary(method.output, body);
    throw errorFromJsonBytes(body, response.headers, new ConnectError(`the server answered HTTP ${response.status}`, codeFromHttpStatus(response.status)));
  }

  /** The messages of a server stream as they arrive; ends with the stream, throws the error its end carries. */
  async *serverStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    input: MessageInitShape<I>,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): AsyncGenerator<MessageShape<O>> {
    const request = toBinary(method.input, create(method.input, input));
    const response = await this.post(method, "application/connect+proto", envelope(0, request), headers, signal);
    if (response.status !== 200 || !response.body) {
      const body = new Uint8Array(await read(response.arrayBuffer(), signal));
      throw errorFromJsonBytes(body, response.headers, new ConnectError(`the server answered HTTP ${response.status}`, codeFromHttpStatus(response.status)));
    }
    const reader = response.body.getReader();
    let pending: Uint8Array = new Uint8Array(0);
    try {
      for (;;) {
        const { done, value } = await read(reader.read(), signal);
        if (done) throw new ConnectError("the stream ended without its end-of-stream message", Code.Unavailable);
        pending = pending.length ? concat(pending, value) : value;
        while (pending.length >= 5) {
          const length = new DataView(pending.buffer, pending.byteOffset, 5).getUint32(1);
          if (pending.length < 5 + length) break;
          const flags = pending[0]!;
          const body = pending.subarray(5, 5 + length);
          pending = pending.subarray(5 + length);
          if (flags & END_STREAM) return endOfStream(body, response.headers);
          yield fromBinary(method.output, body);
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  private async post(
    method: { parent: { typeName: string }; name: string },
    contentType: string,
    body: Uint8Array,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<Response> {
    try {
      return await fetch(`${this.baseUrl}/${method.parent.typeName}/${method.name}`, {
        method: "POST",
        headers: { ...headers, "content-type": contentType, "connect-protocol-version": "1" },
        body: body as Uint8Array<ArrayBuffer>, // what the protobuf runtime writes is never shared memory
        signal,
        redirect: "error",
      });
    } catch (error) {
      throw failure(error, signal);
    }
  }
}

/** Waits for `promise`, failing as the call's signal says when it is aborted (a body read does not always notice). */
async function read<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    throw failure(error, signal);
  }
}

/**
 * Why a fetch failed, as a ConnectError: the abort's reason (a deadline's
 * own error), or a server that cannot be reached (fetch says TypeError).
 */
function failure(error: unknown, signal: AbortSignal): ConnectError {
  if (signal.aborted) return ConnectError.from(signal.reason, Code.Canceled);
  if (error instanceof TypeError) return new ConnectError(`cannot reach the server: ${error.message}`, Code.Unavailable, undefined, undefined, error);
  return ConnectError.from(error, Code.Unavailable);
}

/** A clean end returns; an end carrying an error throws it. */
function endOfStream(body: Uint8Array, headers: Headers): void {
  let end: { error?: unknown };
  try {
    end = JSON.parse(new TextDecoder().decode(body)) as { error?: unknown };
  } catch {
    throw new ConnectError("the server's end of stream does not decode", Code.Internal);
  }
  if (end.error) throw errorFromJsonBytes(new TextEncoder().encode(JSON.stringify(end.error)), headers, new ConnectError("the call failed", Code.Unknown));
}

function envelope(flags: number, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + bytes.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, 5);
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

import { create, fromBinary, isMessage, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import type { HeaderField } from "../h2/hpack.js";
import { UnaryContext } from "./context.js";
import type { RawHeaders, UnaryProtocol } from "./route.js";

/** A unary method and the implementation that serves it (the same one connect's router holds). */
export interface UnaryMethod {
  readonly method: DescMethod;
  readonly impl: (request: unknown, ctx: HandlerContext) => unknown;
}

/** Every unary method the given implementations provide, by request path ("/chorus.v1.ServerService/Emit"). */
export function unaryMethods(services: ReadonlyArray<readonly [DescService, object]>): Map<string, UnaryMethod> {
  const methods = new Map<string, UnaryMethod>();
  for (const [service, impl] of services) {
    for (const method of service.methods) {
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (method.methodKind !== "unary" || typeof fn !== "function") continue;
      methods.set(`/${service.typeName}/${method.name}`, { method, impl: fn.bind(impl) as UnaryMethod["impl"] });
    }
  }
  return methods;
}

/** What a call answers, in a form either HTTP version writes out. */
export interface UnaryAnswer {
  status: number;
  headers: HeaderField[];
  /** Undefined for a gRPC trailers-only response. */
  body: Buffer | undefined;
  /** gRPC's trailers (HTTP/2 only). */
  trailers?: HeaderField[];
}

export interface CallInfo {
  readonly protocol: UnaryProtocol;
  readonly headers: RawHeaders;
  readonly authority: string;
}

const CONTENT_TYPE: Record<UnaryProtocol, string> = {
  connect: "application/proto",
  grpc: "application/grpc+proto",
  "grpc-web": "application/grpc-web+proto",
};
const GRPC_OK: HeaderField[] = [["grpc-status", "0"]];
const GRPC_WEB_OK = envelope(0x80, Buffer.from("grpc-status: 0\r\n"));

/**
 * Serves one call: decodes the request, runs the implementation, encodes
 * its answer or its failure as the protocol says. Never rejects: a
 * failure of ours becomes INTERNAL (and is reported to `onError`).
 */
export async function answerCall(m: UnaryMethod, call: CallInfo, body: Buffer, readMaxBytes: number, onError: (error: unknown) => void): Promise<UnaryAnswer> {
  let input: unknown;
  try {
    input = fromBinary(m.method.input, call.protocol === "connect" ? body : unwrap(body, readMaxBytes));
  } catch (error) {
    return failure(call.protocol, error instanceof ConnectError ? error : new ConnectError(`parse binary: ${String((error as Error)?.message ?? error)}`, Code.InvalidArgument));
  }
  const ctx = new UnaryContext(m.method, call.protocol, call.headers, call.authority);
  try {
    const output = await m.impl(input, ctx);
    const bytes = toBinary(m.method.output, normalize(m.method.output, output));
    ctx.done();
    return success(call.protocol, bytes, ctx);
  } catch (error) {
    ctx.done(error);
    if (error instanceof ConnectError) return failure(call.protocol, error, ctx);
    onError(error);
    return failure(call.protocol, new ConnectError("internal error", Code.Internal), ctx);
  }
}

/** An answer to a request refused before it could be read (too large, ended inside a message). */
export function refusal(protocol: UnaryProtocol, error: ConnectError): UnaryAnswer {
  return failure(protocol, error);
}

function normalize(schema: DescMessage, output: unknown) {
  return isMessage(output, schema) ? output : create(schema, output as Parameters<typeof create>[1]);
}

function success(protocol: UnaryProtocol, bytes: Uint8Array, ctx: UnaryContext): UnaryAnswer {
  const headers: HeaderField[] = [["content-type", CONTENT_TYPE[protocol]]];
  const extra = ctx.extraHeaders;
  if (extra) extra.forEach((value, name) => headers.push([name, value]));
  const trailers = ctx.extraTrailers;
  switch (protocol) {
    case "connect": {
      if (trailers) trailers.forEach((value, name) => headers.push([`trailer-${name}`, value]));
      headers.push(["content-length", String(bytes.length)]);
      return { status: 200, headers, body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
    }
    case "grpc": {
      const fields = trailers ? [...GRPC_OK] : GRPC_OK;
      if (trailers) trailers.forEach((value, name) => fields.push([name, value]));
      return { status: 200, headers, body: envelope(0, bytes), trailers: fields };
    }
    case "grpc-web": {
      const end = trailers ? envelope(0x80, trailerSerialize(setTrailerStatus(new Headers(trailers), undefined))) : GRPC_WEB_OK;
      const out = Buffer.allocUnsafe(5 + bytes.length + end.length);
      writeEnvelope(out, 0, bytes);
      end.copy(out, 5 + bytes.length);
      return { status: 200, headers, body: out };
    }
  }
}

function failure(protocol: UnaryProtocol, error: ConnectError, ctx?: UnaryContext): UnaryAnswer {
  const headers: HeaderField[] = [["content-type", protocol === "connect" ? "application/json" : CONTENT_TYPE[protocol]]];
  ctx?.extraHeaders?.forEach((value, name) => headers.push([name, value]));
  const status = setTrailerStatus(new Headers(ctx?.extraTrailers), error);
  switch (protocol) {
    case "connect": {
      error.metadata.forEach((value, name) => headers.push([name, value]));
      ctx?.extraTrailers?.forEach((value, name) => headers.push([`trailer-${name}`, value]));
      const body = Buffer.from(errorToJsonBytes(error, {}));
      headers.push(["content-length", String(body.length)]);
      return { status: codeToHttpStatus(error.code), headers, body };
    }
    case "grpc":
      // Trailers-only: the status travels in the one header block.
      status.forEach((value, name) => headers.push([name, value]));
      return { status: 200, headers, body: undefined };
    case "grpc-web":
      return { status: 200, headers, body: envelope(0x80, trailerSerialize(status)) };
  }
}

/** The one message of a gRPC or gRPC-Web request body. */
function unwrap(body: Buffer, readMaxBytes: number): Buffer {
  let message: Buffer | undefined;
  for (let pos = 0; pos < body.length; ) {
    if (body.length - pos < 5) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
    const flags = body[pos]!;
    const length = body.readUInt32BE(pos + 1);
    if (length > readMaxBytes) throw new ConnectError(`message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted);
    if (body.length - pos - 5 < length) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
    if (flags & 0x01) throw new ConnectError("received compressed envelope, but no compression was negotiated", Code.InvalidArgument);
    if (flags !== 0) throw new ConnectError(`protocol error: unexpected envelope flags ${flags}`, Code.InvalidArgument);
    if (message) throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
    message = body.subarray(pos + 5, pos + 5 + length);
    pos += 5 + length;
  }
  if (!message) throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  return message;
}

function envelope(flags: number, bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  writeEnvelope(out, 0, bytes, flags);
  return out;
}

function writeEnvelope(out: Buffer, at: number, bytes: Uint8Array, flags = 0): void {
  out[at] = flags;
  out.writeUInt32BE(bytes.length, at + 1);
  out.set(bytes, at + 5);
}

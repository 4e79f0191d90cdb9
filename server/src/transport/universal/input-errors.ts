import type { UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * connect-es reports a request it cannot decode (bad protobuf, a
 * compressed envelope without an encoding) as INTERNAL, because to a
 * client a response it cannot decode is the server's fault. To a server a
 * request it cannot decode is the caller's: INVALID_ARGUMENT, as the
 * contract promises. These failures are recognised by connect's own
 * messages and rewritten in whichever place each protocol carries its
 * status; every other status passes through untouched.
 */

const INPUT_FAILURES = ["parse binary:", "received compressed envelope", "invalid envelope, already compressed"];
const CONNECT_INTERNAL = "internal";
const GRPC_INTERNAL = "13";
const GRPC_INVALID_ARGUMENT = "3";

const isInputFailure = (message: string) => INPUT_FAILURES.some((prefix) => message.startsWith(prefix));

export async function fixInputErrors(response: UniversalServerResponse): Promise<UniversalServerResponse> {
  const type = response.header?.get("content-type") ?? "";
  if (type.startsWith("application/grpc-web")) return { ...response, body: mapLastEnvelope(response.body, 0x80, fixGrpcWebTrailer) };
  if (type.startsWith("application/grpc")) {
    if (response.header) fixGrpcStatus(response.header);
    const trailer = response.trailer;
    return trailer ? { ...response, body: afterBody(response.body, () => fixGrpcStatus(trailer)) } : response;
  }
  if (type.startsWith("application/connect+")) return { ...response, body: mapLastEnvelope(response.body, 0x02, fixEndStream) };
  if (response.status === 500 && type.startsWith("application/json")) return fixUnaryError(response);
  return response;
}

function fixGrpcStatus(headers: Headers): void {
  if (headers.get("grpc-status") !== GRPC_INTERNAL) return;
  if (isInputFailure(decodeURIComponent(headers.get("grpc-message") ?? ""))) headers.set("grpc-status", GRPC_INVALID_ARGUMENT);
}

function fixGrpcWebTrailer(text: string): string | undefined {
  const status = /^grpc-status: *(\d+)\r?$/m.exec(text)?.[1];
  const message = /^grpc-message: *(.*?)\r?$/m.exec(text)?.[1] ?? "";
  if (status !== GRPC_INTERNAL || !isInputFailure(decodeURIComponent(message))) return undefined;
  return text.replace(/^grpc-status: *13/m, `grpc-status: ${GRPC_INVALID_ARGUMENT}`);
}

function fixEndStream(text: string): string | undefined {
  const end = JSON.parse(text) as { error?: { code?: string; message?: string } };
  if (end.error?.code !== CONNECT_INTERNAL || !isInputFailure(end.error.message ?? "")) return undefined;
  end.error.code = "invalid_argument";
  return JSON.stringify(end);
}

/** A Connect unary error: a small JSON body, read whole to decide the HTTP status. */
async function fixUnaryError(response: UniversalServerResponse): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of response.body ?? []) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  let error: { code?: string; message?: string } | undefined;
  try {
    error = JSON.parse(bytes.toString("utf8")) as typeof error;
  } catch {
    error = undefined;
  }
  if (error?.code !== CONNECT_INTERNAL || !isInputFailure(error.message ?? "")) return { ...response, body: once(bytes) };
  error.code = "invalid_argument";
  const out = Buffer.from(JSON.stringify(error));
  response.header?.set("content-length", String(out.length));
  return { ...response, status: 400, body: once(out) };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** Passes the body through, rewriting the envelope with `flag` (the last one) when `fix` returns a new text. */
async function* mapLastEnvelope(body: AsyncIterable<Uint8Array> | undefined, flag: number, fix: (text: string) => string | undefined): AsyncIterable<Uint8Array> {
  for await (const chunk of body ?? []) {
    if (chunk.length >= 5 && chunk[0] === flag) {
      const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (view.readUInt32BE(1) === chunk.length - 5) {
        const fixed = fix(view.subarray(5).toString("utf8"));
        if (fixed !== undefined) {
          const text = Buffer.from(fixed);
          const out = Buffer.alloc(5 + text.length);
          out[0] = flag;
          out.writeUInt32BE(text.length, 1);
          text.copy(out, 5);
          yield out;
          continue;
        }
      }
    }
    yield chunk;
  }
}

async function* afterBody(body: AsyncIterable<Uint8Array> | undefined, done: () => void): AsyncIterable<Uint8Array> {
  try {
    for await (const chunk of body ?? []) yield chunk;
  } finally {
    done();
  }
}

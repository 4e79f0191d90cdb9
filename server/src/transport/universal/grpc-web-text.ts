import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * gRPC-Web's text mode (`application/grpc-web-text`), what Google's
 * grpc-web client sends by default: the binary gRPC-Web body, base64
 * encoded both ways. connect-es speaks only the binary mode, so a text
 * request is decoded into a binary one before its handler and the
 * response encoded back. Each response chunk is encoded on its own (with
 * its padding), as gRPC-Web proxies do; readers decode four characters at
 * a time, so padded chunks may follow one another.
 */

const TEXT_TYPES = new Set(["application/grpc-web-text", "application/grpc-web-text+proto"]);

export function isGrpcWebText(contentType: string | null | undefined): boolean {
  return contentType !== null && contentType !== undefined && TEXT_TYPES.has(contentType.split(";", 1)[0]!.trim().toLowerCase());
}

export function fromGrpcWebText(request: UniversalServerRequest): UniversalServerRequest {
  const header = new Headers(request.header);
  header.set("content-type", "application/grpc-web+proto");
  return { ...request, header, body: decodeBase64Stream(request.body as AsyncIterable<Uint8Array>) };
}

export function toGrpcWebText(response: UniversalServerResponse): UniversalServerResponse {
  const header = new Headers(response.header);
  if (header.has("content-type")) header.set("content-type", "application/grpc-web-text+proto");
  header.delete("content-length");
  return { ...response, header, body: response.body && encodeBase64Stream(response.body) };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Base64 text in arbitrary pieces to the bytes it encodes, four characters at a time. */
async function* decodeBase64Stream(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  let carry = "";
  for await (const chunk of body) {
    const text = carry + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString("latin1").replace(/[\r\n]/g, "");
    const whole = text.length - (text.length % 4);
    carry = text.slice(whole);
    if (whole > 0) yield decodeGroups(text.slice(0, whole));
  }
  if (carry.length > 0) throw new ConnectError("grpc-web-text body is not whole base64 (its length is not a multiple of 4)", Code.InvalidArgument);
}

/** Groups of four characters; padding may end any group (chunks encoded separately). */
function decodeGroups(text: string): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i += 4) {
    if (text.charCodeAt(i + 3) === 61 /* = */ || i + 4 === text.length) {
      const group = text.slice(start, i + 4);
      if (!BASE64.test(group)) throw new ConnectError("grpc-web-text body is not base64", Code.InvalidArgument);
      parts.push(Buffer.from(group, "base64"));
      start = i + 4;
    }
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

async function* encodeBase64Stream(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of body) yield Buffer.from(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString("base64"), "latin1");
}

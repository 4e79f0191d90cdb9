import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";

/**
 * Which unary requests the lean path serves: binary messages, no
 * compression, a well-formed timeout if any, over POST. Anything else
 * (JSON, compression, Connect GET, gRPC-Web text, a malformed header) is
 * left to connect's own handlers, which answer it, errors included,
 * exactly as before.
 */
export type UnaryProtocol = "connect" | "grpc" | "grpc-web";

/** Request headers as both HTTP versions give them (names lower-case). */
export type RawHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** connect's own bound (none): only a timeout's form can make it invalid. */
const MAX_TIMEOUT_MS = Number.MAX_SAFE_INTEGER;

export const one = (value: string | string[] | undefined): string | null => (value === undefined ? null : Array.isArray(value) ? value.join(", ") : value);

/** The protocol of a unary request the lean path takes, or undefined to leave it to connect. */
export function unaryProtocol(method: string | undefined, h: RawHeaders, http2: boolean): UnaryProtocol | undefined {
  if (method !== "POST") return undefined;
  switch (h["content-type"]) {
    case "application/proto": {
      const encoding = h["content-encoding"];
      if (encoding !== undefined && encoding !== "identity") return undefined;
      const version = h["connect-protocol-version"];
      if (version !== undefined && version !== "1") return undefined;
      const timeout = h["connect-timeout-ms"];
      if (timeout !== undefined && parseConnectTimeout(one(timeout), MAX_TIMEOUT_MS).error) return undefined;
      return "connect";
    }
    case "application/grpc":
    case "application/grpc+proto":
      return http2 && plainGrpc(h) ? "grpc" : undefined;
    case "application/grpc-web":
    case "application/grpc-web+proto":
      return plainGrpc(h) ? "grpc-web" : undefined;
    default:
      return undefined;
  }
}

function plainGrpc(h: RawHeaders): boolean {
  const encoding = h["grpc-encoding"];
  if (encoding !== undefined && encoding !== "identity") return false;
  const timeout = h["grpc-timeout"];
  return timeout === undefined || parseGrpcTimeout(one(timeout), MAX_TIMEOUT_MS).error === undefined;
}

/** The request's timeout in milliseconds, when it gives one. */
export function requestTimeoutMs(protocol: UnaryProtocol, h: RawHeaders): number | undefined {
  return protocol === "connect" ? parseConnectTimeout(one(h["connect-timeout-ms"]), MAX_TIMEOUT_MS).timeoutMs : parseGrpcTimeout(one(h["grpc-timeout"]), MAX_TIMEOUT_MS).timeoutMs;
}

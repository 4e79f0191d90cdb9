import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { fixInputErrors } from "./input-errors.js";
import { fromGrpcWebText, isGrpcWebText, toGrpcWebText } from "./grpc-web-text.js";

/**
 * Calls one of connect's universal handlers the way both HTTP versions do:
 * gRPC-Web text requests decoded to binary and their responses encoded
 * back, and undecodable requests answered INVALID_ARGUMENT.
 */
export async function callUniversal(handler: UniversalHandler, request: UniversalServerRequest): Promise<UniversalServerResponse> {
  const text = isGrpcWebText(request.header.get("content-type"));
  const response = await fixInputErrors(await handler(text ? fromGrpcWebText(request) : request));
  return text ? toGrpcWebText(response) : response;
}

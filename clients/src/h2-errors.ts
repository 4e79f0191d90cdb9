import { Code, ConnectError } from "@connectrpc/connect";

/** What a failed connection or stream means to a caller, as connect's clients report it. */
export function transportError(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  const code = (error as NodeJS.ErrnoException)?.code;
  const unavailable = code === "ECONNREFUSED" || code === "ECONNRESET" || code === "ETIMEDOUT" || code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "ERR_HTTP2_GOAWAY_SESSION" || code === "ERR_HTTP2_STREAM_CANCEL" || code === "ERR_HTTP2_SESSION_ERROR";
  const e = ConnectError.from(error, unavailable ? Code.Unavailable : Code.Internal);
  if (e !== error) e.cause = error;
  return e;
}

/** A stream that closed without an answer, by its RST_STREAM code (gRPC's mapping of HTTP/2 codes). */
export function resetError(rstCode: number): ConnectError {
  switch (rstCode) {
    case 7: // REFUSED_STREAM: never processed, safe to try again
      return new ConnectError("the server refused the stream", Code.Unavailable);
    case 8: // CANCEL
      return new ConnectError("the call was cancelled", Code.Canceled);
    case 11: // ENHANCE_YOUR_CALM
      return new ConnectError("the server asked to slow down", Code.ResourceExhausted);
    case 12: // INADEQUATE_SECURITY
      return new ConnectError("the connection's security is not adequate", Code.PermissionDenied);
    default:
      return new ConnectError(`the stream closed without an answer (HTTP/2 code ${rstCode})`, rstCode === 0 ? Code.Unavailable : Code.Internal);
  }
}

import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type * as http from "node:http";
import { withAbort } from "./abort.js";
import { callUniversal } from "./call.js";

/** A request served over HTTP/1.1 by one of connect's universal handlers. */
export async function serveUniversalH1(req: http.IncomingMessage, res: http.ServerResponse, handler: UniversalHandler): Promise<void> {
  const response = await callUniversal(handler, universalRequestFromNodeRequest(req, res, undefined, withAbort(() => res.destroy())));
  await universalResponseToNodeResponse(response, res);
}

import { cors as connectCors } from "@connectrpc/connect";
import type * as http from "node:http";

/**
 * CORS for browsers whose page comes from another origin than Chorus (the
 * usual case: the app's own server serves the page). Preflights are
 * answered here; every other response gets the allow/expose headers that
 * Connect and gRPC-Web need, plus `authorization` for user tokens.
 */
export interface CorsPolicy {
  /** `*` allows any origin; otherwise exact origins such as https://app.example.com. */
  origins: readonly string[];
}

const ALLOW_HEADERS = [...connectCors.allowedHeaders, "Authorization"].join(", ");
const EXPOSE_HEADERS = connectCors.exposedHeaders.join(", ");
const ALLOW_METHODS = connectCors.allowedMethods.join(", ");

type Req = Pick<http.IncomingMessage, "method" | "headers">;
type Res = Pick<http.ServerResponse, "setHeader" | "writeHead" | "end">;

/** Returns true when it answered the request itself (a preflight). */
export function applyCors(policy: CorsPolicy, req: Req, res: Res): boolean {
  const origin = req.headers.origin;
  if (!origin) return false;
  const allowed = policy.origins.includes("*") || policy.origins.includes(origin);
  if (!allowed) {
    // No CORS headers: the browser refuses the response, which is the point.
    if (req.method === "OPTIONS") {
      res.writeHead(403, { "content-type": "text/plain" });
      res.end(`origin ${origin} is not allowed; add it to CHORUS_CORS_ORIGINS\n`);
      return true;
    }
    return false;
  }
  res.setHeader("access-control-allow-origin", origin);
  res.setHeader("vary", "Origin");
  if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
    res.writeHead(204, {
      "access-control-allow-methods": ALLOW_METHODS,
      "access-control-allow-headers": ALLOW_HEADERS,
      "access-control-max-age": "7200",
    });
    res.end();
    return true;
  }
  res.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
  return false;
}

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

// Chorus-Node: the browser client names the node holding its session on each command (for load balancers).
const ALLOW_HEADERS = [...connectCors.allowedHeaders, "Authorization", "Chorus-Node"].join(", ");
const EXPOSE_HEADERS = connectCors.exposedHeaders.join(", ");
const ALLOW_METHODS = connectCors.allowedMethods.join(", ");

export interface CorsAnswer {
  /** Headers every response to this request carries. */
  headers: Record<string, string>;
  /** Set when this is a preflight (or a refused one): the whole response, given here. */
  reply?: { status: number; headers: Record<string, string>; body: string };
}

/** What CORS asks of a response to a request with these method and headers (undefined: nothing). */
export function corsAnswer(policy: CorsPolicy, method: string | undefined, headers: http.IncomingHttpHeaders): CorsAnswer | undefined {
  const origin = headers.origin;
  if (!origin) return undefined;
  const allowed = policy.origins.includes("*") || policy.origins.includes(origin);
  if (!allowed) {
    // No CORS headers: the browser refuses the response, which is the point.
    if (method !== "OPTIONS") return undefined;
    return { headers: {}, reply: { status: 403, headers: { "content-type": "text/plain" }, body: `origin ${origin} is not allowed; add it to CHORUS_CORS_ORIGINS\n` } };
  }
  const answer: CorsAnswer = { headers: { "access-control-allow-origin": origin, vary: "Origin" } };
  if (method === "OPTIONS" && headers["access-control-request-method"]) {
    answer.reply = {
      status: 204,
      headers: { "access-control-allow-methods": ALLOW_METHODS, "access-control-allow-headers": ALLOW_HEADERS, "access-control-max-age": "7200" },
      body: "",
    };
  } else {
    answer.headers["access-control-expose-headers"] = EXPOSE_HEADERS;
  }
  return answer;
}

/** Applies CORS to an HTTP/1.1 response; returns true when it answered the request itself. */
export function applyCors(policy: CorsPolicy, req: Pick<http.IncomingMessage, "method" | "headers">, res: Pick<http.ServerResponse, "setHeader" | "writeHead" | "end">): boolean {
  const answer = corsAnswer(policy, req.method, req.headers);
  if (!answer) return false;
  for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
  if (!answer.reply) return false;
  res.writeHead(answer.reply.status, answer.reply.headers);
  res.end(answer.reply.body);
  return true;
}

import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import type { ChorusNode } from "./node.js";

/** The built-in page (server/console/), compiled into the server by build.mjs; absent when run from the TypeScript sources. */
declare const __CHORUS_CONSOLE__: { html: string; js: string } | undefined;
const page = typeof __CHORUS_CONSOLE__ === "undefined" ? undefined : __CHORUS_CONSOLE__;

export interface PlainResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const json = (status: number, value: unknown): PlainResponse => ({ status, headers: { "content-type": "application/json" }, body: JSON.stringify(value) });

/**
 * The routes that are not RPCs, on the public port: the built-in page at
 * `/` (and its script), `/healthz` (alive), `/readyz` (ready for clients;
 * on the internal port instead when there is one), and `/_chorus/stats`
 * (what the page's inspector shows; an API key unless in development mode,
 * since it names topics). `/metrics` is answered by `metricsRoute`.
 * Undefined for any other request.
 */
export function plainRoute(node: ChorusNode, method: string | undefined, url: string, authorization: string | undefined, connections: unknown): PlainResponse | undefined {
  const path = url.split("?", 1)[0];
  // Any method: a probe is a probe.
  if (path === "/healthz") return json(200, { status: "ok", node: node.config.nodeId, sessions: node.sessionCount, connections });
  // With an internal port, readiness is answered there only.
  if (path === "/readyz" && node.config.internalPort === undefined) return readiness(node);
  if (method !== "GET" && method !== "HEAD") return undefined;
  switch (path) {
    case "/":
    case "/index.html":
      return page
        ? { status: 200, headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache" }, body: page.html }
        : { status: 200, headers: { "content-type": "text/plain; charset=utf-8" }, body: "Chorus is running. Its built-in page is part of the built server (npm run build).\n" };
    case "/_chorus/console.js":
      return page ? { status: 200, headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-cache" }, body: page.js } : undefined;
    case "/_chorus/stats":
      try {
        let header: Headers;
        try {
          header = new Headers(authorization ? { authorization } : {});
        } catch {
          throw new ConnectError("the authorization header holds characters no header may hold", Code.Unauthenticated);
        }
        node.apiKeys.check(header);
        return json(200, node.stats());
      } catch (error) {
        const e = ConnectError.from(error);
        return json(codeToHttpStatus(e.code), errorToJson(e, undefined));
      }
    default:
      return undefined;
  }
}

/** `/readyz`: 200 when the node should be sent clients, else 503; the checks say which failed. */
export function readiness(node: ChorusNode): PlainResponse {
  const { ready, checks } = node.readiness();
  return json(ready ? 200 : 503, { status: ready ? "ready" : "not ready", node: node.config.nodeId, ...checks });
}

/** `GET /metrics` (Prometheus text), on the public port unless an internal one is set; undefined for other requests. */
export function metricsRoute(node: ChorusNode, method: string | undefined, url: string, internal: boolean): Promise<PlainResponse> | undefined {
  if (url.split("?", 1)[0] !== "/metrics" || (method !== "GET" && method !== "HEAD")) return undefined;
  if (node.config.internalPort !== undefined && !internal) return undefined;
  return node.metrics.scrape().then(({ contentType, body }) => ({ status: 200, headers: { "content-type": contentType }, body }));
}

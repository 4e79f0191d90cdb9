import { connectNodeAdapter } from "@connectrpc/connect-node";
import { setMaxListeners } from "node:events";
import { RealtimeService } from "../../gen/chorus/v1/realtime_pb.js";
import { ServerService } from "../../gen/chorus/v1/server_pb.js";
import type { ChorusConfig } from "./config.js";
import type { Logger } from "./log.js";
import { ChorusNode } from "./node.js";
import { realtimeService } from "./services/realtime.js";
import { serverService } from "./services/server.js";
import { applyCors } from "./transport/cors.js";
import { Http1Wire, Http2Wire, serveSessionStream, sessionStreamRoute } from "./transport/session-stream.js";
import { DualProtocolListener } from "./transport/listener.js";

export interface RunningChorus {
  /** Base URL clients use, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly port: number;
  readonly node: ChorusNode;
  /** Stops accepting, tells clients to reconnect elsewhere, ends streams, flushes history. */
  close(): Promise<void>;
}

/** Starts a node and its one port (Connect, gRPC and gRPC-Web over HTTP/1.1 and h2c). */
export async function startChorus(config: ChorusConfig, log: Logger): Promise<RunningChorus> {
  const node = new ChorusNode(config, log);
  await node.engine.start();
  const shutdown = new AbortController();
  // connect-node links every call's signal to this one: thousands of
  // streams are normal here, not a listener leak.
  setMaxListeners(0, shutdown.signal);
  const rpc = connectNodeAdapter({
    routes(router) {
      router.service(RealtimeService, realtimeService(node));
      router.service(ServerService, serverService(node));
    },
    // Room for the largest payload plus its envelope and the other fields.
    readMaxBytes: config.maxPayloadBytes * 2 + 64 * 1024,
    // Compression would be paid per subscriber on the fan-out path.
    acceptCompression: [],
    shutdownSignal: shutdown.signal,
    fallback: (req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      const [status, body] =
        path === "/healthz"
          ? [200, JSON.stringify({ status: "ok", node: config.nodeId, sessions: node.sessionCount })]
          : [404, JSON.stringify({ error: "not found" })];
      res.writeHead(status, { "content-type": "application/json" });
      res.end(body);
    },
  });
  const cors = { origins: config.corsOrigins };
  const listener = new DualProtocolListener(
    (req, res) => {
      if (applyCors(cors, req, res)) return;
      const route = req.httpVersionMajor === 1 ? sessionStreamRoute(req.method, req.url, req.headers, false) : undefined;
      if (route) serveSessionStream(node, new Http1Wire(req, res), route, req.headers.authorization);
      else rpc(req, res);
    },
    (stream, headers) => {
      // Browsers never reach us over h2c, so cross-origin calls stay on the path above.
      if (headers.origin) return false;
      const route = sessionStreamRoute(headers[":method"], headers[":path"], headers, true);
      if (!route) return false;
      serveSessionStream(node, new Http2Wire(stream), route, headers.authorization);
      return true;
    },
  );
  const address = await listener.listen(config.port, config.host);
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    node,
    close: () =>
      (closing ??= (async () => {
        await Promise.race([listener.stopAccepting(), delay(50)]);
        await node.close();
        shutdown.abort();
        listener.goAway();
        const deadline = Date.now() + config.shutdownGraceMs;
        while (listener.busy && Date.now() < deadline) await delay(20);
        listener.destroyAll();
      })()),
  };
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { setMaxListeners } from "node:events";
import { RealtimeService } from "../../gen/chorus/v1/realtime_pb.js";
import { ServerService } from "../../gen/chorus/v1/server_pb.js";
import type { ChorusConfig } from "./config.js";
import type { Logger } from "./log.js";
import { ChorusNode } from "./node.js";
import { realtimeService } from "./services/realtime.js";
import { serverService } from "./services/server.js";
import { applyCors, corsAnswer } from "./transport/cors.js";
import { respondPlain, serveUniversal } from "./transport/h2/universal.js";
import { H2Wire, Http1Wire, serveSessionStream, sessionStreamRoute } from "./transport/session-stream.js";
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
  const router = createConnectRouter({
    // Room for the largest payload plus its envelope and the other fields.
    readMaxBytes: config.maxPayloadBytes * 2 + 64 * 1024,
    // Compression would be paid per subscriber on the fan-out path.
    acceptCompression: [],
    shutdownSignal: shutdown.signal,
  });
  router.service(RealtimeService, realtimeService(node));
  router.service(ServerService, serverService(node));
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  const handlerFor = (path: string) => handlers.get(path.split("?", 1)[0]!);
  const notRouted = (path: string) =>
    path.split("?", 1)[0] === "/healthz"
      ? { status: 200, body: JSON.stringify({ status: "ok", node: config.nodeId, sessions: node.sessionCount }) }
      : { status: 404, body: JSON.stringify({ error: "not found" }) };
  const cors = { origins: config.corsOrigins };
  const handlerFailed = (path: string) => (reason: unknown) => {
    if (ConnectError.from(reason).code !== Code.Aborted) log.error(`handler for ${path} failed`, { error: String(reason) });
  };

  const listener = new DualProtocolListener(
    (req, res) => {
      if (applyCors(cors, req, res)) return;
      const route = sessionStreamRoute(req.method, req.url, req.headers, false);
      if (route) return serveSessionStream(node, new Http1Wire(req, res), route, req.headers.authorization);
      const handler = handlerFor(req.url ?? "/");
      if (!handler) {
        const { status, body } = notRouted(req.url ?? "/");
        res.writeHead(status, { "content-type": "application/json" });
        return void res.end(body);
      }
      handler(universalRequestFromNodeRequest(req, res, undefined, undefined))
        .then((response) => universalResponseToNodeResponse(response, res))
        .catch(handlerFailed(handler.requestPath));
    },
    (stream, head) => {
      const answer = corsAnswer(cors, head.method, head.headers);
      if (answer?.reply) return respondPlain(stream, answer.reply.status, { ...answer.headers, ...answer.reply.headers }, answer.reply.body);
      // Browsers never reach us over h2c: cross-origin session streams take connect's generic path.
      const route = head.headers.origin ? undefined : sessionStreamRoute(head.method, head.path, head.headers, true);
      if (route) return serveSessionStream(node, new H2Wire(stream), route, head.headers.authorization);
      const handler = handlerFor(head.path);
      if (!handler) {
        const { status, body } = notRouted(head.path);
        return respondPlain(stream, status, { "content-type": "application/json", ...answer?.headers }, body);
      }
      serveUniversal(stream, head, handler, answer?.headers ?? {}).catch(handlerFailed(handler.requestPath));
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

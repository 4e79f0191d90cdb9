import { Code, ConnectError, createConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { setMaxListeners } from "node:events";
import type * as http from "node:http";
import { file_chorus_v1_realtime, RealtimeService } from "../../gen/chorus/v1/realtime_pb.js";
import { file_chorus_v1_server, ServerService } from "../../gen/chorus/v1/server_pb.js";
import { file_grpc_reflection_v1_reflection, ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { file_grpc_reflection_v1alpha_reflection, ServerReflection as ReflectionV1alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { reflectionService } from "./reflection/service.js";
import type { ChorusConfig } from "./config.js";
import type { Logger } from "./log.js";
import { ChorusNode } from "./node.js";
import { realtimeService } from "./services/realtime.js";
import { serveSse, sseRequest } from "./sse/stream.js";
import { metricsRoute, plainRoute, readiness, type PlainResponse } from "./plain-routes.js";
import { serverService } from "./services/server.js";
import { applyCors, corsAnswer } from "./transport/cors.js";
import { DualProtocolListener } from "./transport/listener.js";
import type { RequestHead, ServerStream } from "./transport/server-stream.js";
import { emitSessionRoute, serveEmitSession } from "./transport/emit-session.js";
import { H2Wire, Http1Wire, serveSessionStream, sessionStreamRoute } from "./transport/session-stream.js";
import { unaryMethods } from "./transport/unary/call.js";
import { UnaryServer } from "./transport/unary/serve.js";
import { serveUniversalH1 } from "./transport/universal/h1.js";
import { respondPlain, serveUniversal } from "./transport/universal/h2.js";

export interface RunningChorus {
  /** Base URL clients use, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly port: number;
  /** The internal port (/metrics, /readyz), when CHORUS_INTERNAL_PORT is set. */
  readonly internalPort: number | undefined;
  readonly node: ChorusNode;
  /** Stops accepting, tells clients to reconnect elsewhere, ends streams, flushes history. */
  close(): Promise<void>;
}

/** Starts a node and its one port (Connect, gRPC and gRPC-Web over HTTP/1.1 and h2c). */
export async function startChorus(config: ChorusConfig, log: Logger): Promise<RunningChorus> {
  const node = new ChorusNode(config, log);
  await node.engine.start();
  await node.presence.start();
  await node.startAdmin();
  // A PostgreSQL is read from the start (its changes come from any client); the embedded database opens on first use.
  if (config.databaseUrl) node.changes.openInBackground();
  const shutdown = new AbortController();
  // connect-node links every call's signal to this one: thousands of
  // streams are normal here, not a listener leak.
  setMaxListeners(0, shutdown.signal);
  // Room for the largest payload plus its envelope and the other fields.
  const readMaxBytes = config.maxPayloadBytes * 2 + 64 * 1024;
  const router = createConnectRouter({
    readMaxBytes,
    // Compression would be paid per subscriber on the fan-out path.
    acceptCompression: [],
    shutdownSignal: shutdown.signal,
  });
  // Every unary method timed for the metrics, on either path that serves it.
  const refused = (method: string, error: unknown) => node.commandRefused(method, error);
  const realtime = node.metrics.timed(RealtimeService, realtimeService(node), refused);
  const server = node.metrics.timed(ServerService, serverService(node), refused);
  router.service(RealtimeService, realtime);
  router.service(ServerService, server);
  // gRPC reflection, both versions tools ask for, describing the two services above.
  const reflection = reflectionService([file_chorus_v1_realtime, file_chorus_v1_server, file_grpc_reflection_v1_reflection, file_grpc_reflection_v1alpha_reflection], [RealtimeService.typeName, ServerService.typeName, ReflectionV1.typeName, ReflectionV1alpha.typeName]);
  router.service(ReflectionV1, reflection);
  router.service(ReflectionV1alpha, reflection as unknown as ServiceImpl<typeof ReflectionV1alpha>);
  // The same implementations, served on the lean path where a request is plain binary (transport/unary/README.md).
  const unary = new UnaryServer(
    unaryMethods([
      [RealtimeService, realtime],
      [ServerService, server],
    ]),
    { readMaxBytes, onError: (error, context) => log.error(`failed while ${context}`, { error: String((error as Error)?.stack ?? error) }) },
  );
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  const handlerFor = (path: string): UniversalHandler | undefined => handlers.get(path.split("?", 1)[0]!);
  let listener: DualProtocolListener | undefined;
  const notRouted = (method: string | undefined, path: string, headers: Record<string, string | string[] | undefined>): PlainResponse =>
    plainRoute(node, method, path, headers.authorization as string | undefined, listener?.counts) ?? unknownRoute(method, path, headers["content-type"]);
  const cors = { origins: config.corsOrigins };
  const handlerFailed = (path: string) => (reason: unknown) => {
    if (ConnectError.from(reason).code !== Code.Aborted) log.error(`handler for ${path} failed`, { error: String(reason) });
  };

  // With an internal port, the admin RPCs are served there only.
  const adminElsewhere = (path: string) => config.internalPort !== undefined && ADMIN_METHODS.has(path.split("?", 1)[0]!);
  const elsewhere = (method: string | undefined, path: string, contentType: string | string[] | undefined) =>
    unknownRoute(method, path, contentType, `${path.split("?", 1)[0]} is served on this node's internal port only (CHORUS_INTERNAL_PORT)`);

  /** A unary or streaming RPC over HTTP/1.1, by the lean path when it can, connect's otherwise; false when no method has this path. */
  const rpcH1 = (req: http.IncomingMessage, res: http.ServerResponse): false | void | Promise<void> => {
    const lean = unary.route(req.method, req.url ?? "/", req.headers, false);
    if (lean) return unary.serveH1(req, res, lean);
    const handler = handlerFor(req.url ?? "/");
    return handler ? serveUniversalH1(req, res, handler) : false;
  };
  const rpcH2 = (stream: ServerStream, head: RequestHead, extraHeaders: Record<string, string> = {}): false | void | Promise<void> => {
    const lean = unary.route(head.method, head.path, head.headers, true);
    if (lean) return unary.serveH2(stream, head, lean, extraHeaders);
    const handler = handlerFor(head.path);
    return handler ? serveUniversal(stream, head, handler, extraHeaders).catch(handlerFailed(handler.requestPath)) : false;
  };
  const plainH1 = (res: http.ServerResponse, method: string | undefined, { status, headers, body }: PlainResponse) => void res.writeHead(status, headers).end(method === "HEAD" ? undefined : body);

  const serveH1 = (req: http.IncomingMessage, res: http.ServerResponse): void | Promise<void> => {
    if (applyCors(cors, req, res)) return;
    if (adminElsewhere(req.url ?? "/")) return plainH1(res, req.method, elsewhere(req.method, req.url ?? "/", req.headers["content-type"]));
    const route = sessionStreamRoute(req.method, req.url, req.headers, false);
    if (route) return void serveSessionStream(node, new Http1Wire(req, res), route, req.headers.authorization);
    const sse = sseRequest(req.method, req.url ?? "/", req.headers);
    if (sse) {
      const refuse = (status: number, headers: Record<string, string>, body: string) => void res.writeHead(status, headers).end(body);
      return serveSse(node, new Http1Wire(req, res), refuse, sse, {});
    }
    const metrics = metricsRoute(node, req.method, req.url ?? "/", false);
    if (metrics) return metrics.then((r) => plainH1(res, req.method, r));
    const served = rpcH1(req, res);
    if (served !== false) return served;
    return plainH1(res, req.method, notRouted(req.method, req.url ?? "/", req.headers));
  };

  const serveH2 = (stream: ServerStream, head: RequestHead): void | Promise<void> => {
    const answer = corsAnswer(cors, head.method, head.headers);
    if (answer?.reply) return respondPlain(stream, answer.reply.status, { ...answer.headers, ...answer.reply.headers }, answer.reply.body);
    // Browsers never reach us over h2c: cross-origin session streams take connect's generic path.
    const route = head.headers.origin ? undefined : sessionStreamRoute(head.method, head.path, head.headers, true);
    if (route) return void serveSessionStream(node, new H2Wire(stream), route, head.headers.authorization);
    const emits = head.headers.origin ? undefined : emitSessionRoute(head.method, head.path, head.headers, true);
    if (emits) return serveEmitSession(node, new H2Wire(stream), emits, head.headers.authorization, readMaxBytes);
    const sse = sseRequest(head.method, head.path, head.headers);
    if (sse) return serveSse(node, new H2Wire(stream), (status, headers, body) => respondPlain(stream, status, headers, body), sse, answer?.headers ?? {});
    const plain = (r: PlainResponse) => respondPlain(stream, r.status, { ...r.headers, ...answer?.headers }, head.method === "HEAD" ? "" : r.body);
    if (adminElsewhere(head.path)) return plain(elsewhere(head.method, head.path, head.headers["content-type"]));
    const metrics = metricsRoute(node, head.method, head.path, false);
    if (metrics) return metrics.then(plain);
    const served = rpcH2(stream, head, answer?.headers);
    if (served !== false) return served;
    return plain(notRouted(head.method, head.path, head.headers));
  };

  /** The internal port: /metrics, /readyz, /healthz and the admin RPCs, nothing else. */
  const internalRoute = (method: string | undefined, path: string): PlainResponse | Promise<PlainResponse> | undefined =>
    metricsRoute(node, method, path, true) ??
    (path.split("?", 1)[0] === "/readyz" ? readiness(node) : undefined) ??
    (path.split("?", 1)[0] === "/healthz" ? plainRoute(node, method, "/healthz", undefined, internal?.counts) : undefined);
  const notInternal = (path: string): PlainResponse => ({ status: 404, headers: { "content-type": "application/json" }, body: JSON.stringify({ code: "not_found", message: `${path.split("?", 1)[0]}: the internal port serves /metrics, /readyz, /healthz and the admin RPCs (ListConnections, DisconnectUser, ListPresence)` }) });
  const internalH1 = (req: http.IncomingMessage, res: http.ServerResponse): void | Promise<void> => {
    const path = req.url ?? "/";
    const answer = internalRoute(req.method, path);
    if (answer) return Promise.resolve(answer).then((r) => plainH1(res, req.method, r));
    const served = ADMIN_METHODS.has(path.split("?", 1)[0]!) ? rpcH1(req, res) : false;
    if (served !== false) return served;
    plainH1(res, req.method, notInternal(path));
  };
  const internalH2 = (stream: ServerStream, head: RequestHead): void | Promise<void> => {
    const plain = (r: PlainResponse) => respondPlain(stream, r.status, r.headers, head.method === "HEAD" ? "" : r.body);
    const answer = internalRoute(head.method, head.path);
    if (answer) return Promise.resolve(answer).then(plain);
    const served = ADMIN_METHODS.has(head.path.split("?", 1)[0]!) ? rpcH2(stream, head) : false;
    if (served !== false) return served;
    plain(notInternal(head.path));
  };
  let internal: DualProtocolListener | undefined;

  listener = new DualProtocolListener(serveH1, serveH2, {
    maxSockets: config.maxSockets,
    listenBacklog: config.listenBacklog,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    http2: config.http2,
    h2Limits: config.h2,
    onError: (error, context) => log.error(`failed while ${context}`, { error: String((error as Error)?.stack ?? error) }),
  });
  const address = await listener.listen(config.port, config.host);
  const counted = listener;
  node.connectionCounts = () => {
    const { h1, h2 } = counted.counts;
    return { h1, h2 };
  };
  let internalPort: number | undefined;
  if (config.internalPort !== undefined) {
    internal = new DualProtocolListener(internalH1, internalH2, {
      maxSockets: 256,
      listenBacklog: 128,
      handshakeTimeoutMs: config.handshakeTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      http2: config.http2,
      h2Limits: config.h2,
      onError: (error, context) => log.error(`internal port: failed while ${context}`, { error: String((error as Error)?.stack ?? error) }),
    });
    internalPort = (await internal.listen(config.internalPort, config.host)).port;
  }
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const running = listener;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    internalPort,
    node,
    close: () =>
      (closing ??= (async () => {
        await Promise.race([running.stopAccepting(), delay(50)]);
        await node.close();
        shutdown.abort();
        running.goAway();
        const deadline = Date.now() + config.shutdownGraceMs;
        while (running.busy && Date.now() < deadline) await delay(20);
        running.destroyAll();
        internal?.destroyAll();
      })()),
  };
}

/**
 * A request for no route. A gRPC or gRPC-Web client (by its content type)
 * is answered as gRPC says: HTTP 200 with the status in the headers and no
 * body (Trailers-Only), UNIMPLEMENTED; anyone else gets Connect's JSON
 * error with 404.
 */
function unknownRoute(method: string | undefined, path: string, contentType: string | string[] | undefined, message?: string): PlainResponse {
  const what = message ?? `no method ${path.split("?", 1)[0]} here (services: chorus.v1.RealtimeService, chorus.v1.ServerService)`;
  if (method === "POST" && typeof contentType === "string" && /^application\/grpc(-web)?(\+|;|$)/.test(contentType)) {
    return { status: 200, headers: { "content-type": contentType, "grpc-status": String(Code.Unimplemented), "grpc-message": encodeURIComponent(what) }, body: "" };
  }
  return { status: 404, headers: { "content-type": "application/json" }, body: JSON.stringify({ code: "unimplemented", message: what }) };
}

/** The admin API's RPCs: on the internal port only, when there is one. */
const ADMIN_METHODS = new Set(["ListConnections", "DisconnectUser", "ListPresence"].map((m) => `/${ServerService.typeName}/${m}`));

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

import * as http from "node:http";
import type * as http2 from "node:http2";
import * as net from "node:net";
import { H2Connection, H2_ERROR, PREFACE as H2_PREFACE, type H2Limits } from "./h2/connection.js";
import { createNodeH2Server } from "./node-h2/server.js";
import type { RequestHead, ServerStream } from "./server-stream.js";

/** Serves one HTTP/2 request. May throw or reject: only that stream fails. */
export type StreamHandler = (stream: ServerStream, head: RequestHead) => void | Promise<void>;
/** Serves one HTTP/1.1 request. May throw or reject: only that request fails (500). */
export type Http1Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

export interface ListenerOptions {
  /** Sockets held at once; past it new ones are closed as they are accepted. */
  maxSockets: number;
  /**
   * Connections the kernel completes and queues before we accept them. A
   * burst larger than Node's default (511) would otherwise have its handshakes
   * dropped and retried by the clients' kernels, seconds later.
   */
  listenBacklog: number;
  /** A connection must deliver its first request within this time. */
  handshakeTimeoutMs: number;
  /** A connection with no request or stream in progress is closed after this time. */
  idleTimeoutMs: number;
  /** Which HTTP/2 serves h2c: Chorus' own, or Node's `http2` (the escape hatch). */
  http2: "chorus" | "node";
  h2Limits: H2Limits;
  /** A failure of ours while serving a connection, for the log. */
  onError(error: unknown, context: string): void;
}

/** How long a liveness PING may go unanswered. */
const PING_TIMEOUT_MS = 10_000;
const SWEEP_MS = 1000;

interface Tracked {
  readonly socket: net.Socket;
  readonly acceptedAt: number;
  /** Which server has the socket, once its first bytes said. */
  kind: "unknown" | "h1" | "h2" | "node-h2";
  /** A first request arrived. */
  handshaken: boolean;
  h2?: H2Connection;
  nodeSession?: http2.Http2Session;
  /** Requests (HTTP/1.1) or streams (Node's HTTP/2) in progress. */
  active: number;
  /** Since when nothing is in progress (Date.now()). */
  idleSince: number;
}

/** A socket that errs is destroyed: shared by every socket (`this` is the socket). */
function destroyOnError(this: net.Socket): void {
  this.destroy();
}

/**
 * One port for HTTP/1.1 and cleartext HTTP/2 (prior knowledge): the first
 * bytes of each connection decide which server gets it.
 *
 * Every resource a peer can make us hold here is bounded: sockets by a cap
 * checked when they are accepted (before anything is allocated for them),
 * time by a handshake deadline and an idle deadline, both enforced by one
 * sweep a second rather than a timer per connection. Every request runs
 * inside a boundary: whatever its handler throws or rejects with ends that
 * request, never the process.
 */
export class DualProtocolListener {
  private readonly tcp: net.Server;
  private readonly h1: http.Server;
  private readonly nodeH2: http2.Http2Server | undefined;
  private readonly tracked = new Map<net.Socket, Tracked>();
  private readonly sweeper: NodeJS.Timeout;
  private closing = false;
  /** Forgets a closed socket (`this` is the socket). */
  private readonly forget: (this: net.Socket) => void;

  constructor(
    private readonly h1Handler: Http1Handler,
    private readonly h2Handler: StreamHandler,
    private readonly options: ListenerOptions,
  ) {
    // Node's own header timeout never runs on sockets it did not accept itself: the sweep below does its work.
    this.h1 = http.createServer({ keepAliveTimeout: options.idleTimeoutMs, requestTimeout: 0 }, this.onH1Request);
    this.h1.on("clientError", (error: NodeJS.ErrnoException, socket: net.Socket) => {
      // Malformed HTTP/1.1: 400 when the socket can still take it, as Node does by default.
      if (socket.writable && error.code !== "ECONNRESET") socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      else socket.destroy();
    });
    if (options.http2 === "node") {
      this.nodeH2 = createNodeH2Server({ onRequest: this.onNodeH2Request, onError: options.onError }, options.h2Limits);
    }
    this.tcp = net.createServer({ noDelay: true }, (socket) => this.route(socket));
    this.tcp.maxConnections = options.maxSockets;
    const tracked = this.tracked;
    this.forget = function (this: net.Socket) {
      tracked.delete(this);
    };
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  listen(port: number, host: string): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.tcp.once("error", reject);
      this.tcp.listen({ port, host, backlog: this.options.listenBacklog }, () => {
        this.tcp.off("error", reject);
        resolve(this.tcp.address() as net.AddressInfo);
      });
    });
  }

  /** Stops accepting connections; existing ones go on. */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => this.tcp.close(() => resolve()));
  }

  /**
   * Asks HTTP/2 clients to go away and closes HTTP/1.1 connections once
   * idle. (http.Server's own closeIdleConnections only knows connections it
   * accepted itself, and this one is handed them.)
   */
  goAway(): void {
    this.closing = true;
    for (const t of this.tracked.values()) {
      if (t.h2) t.h2.goAway();
      else if (t.nodeSession && !t.nodeSession.destroyed) t.nodeSession.close();
      else if (t.kind !== "h1" || t.active === 0) t.socket.end();
    }
  }

  /** Whether any connection is still open. */
  get busy(): boolean {
    return this.tracked.size > 0;
  }

  /** Open sockets by protocol, for /healthz and the tests that count what a node holds. */
  get counts(): { sockets: number; h1: number; h2: number } {
    let h1 = 0;
    let h2 = 0;
    for (const t of this.tracked.values()) {
      if (t.kind === "h1") h1++;
      else if (t.kind !== "unknown") h2++;
    }
    return { sockets: this.tracked.size, h1, h2 };
  }

  destroyAll(): void {
    clearInterval(this.sweeper);
    for (const socket of this.tracked.keys()) socket.destroy();
  }

  // ---- boundaries ----

  private readonly onH1Request = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const t = this.tracked.get(req.socket);
    if (t) {
      t.handshaken = true;
      t.active++;
      if (this.closing) res.shouldKeepAlive = false;
      res.once("close", () => {
        // The socket may have closed (and been forgotten) first: never re-add it.
        if (!this.tracked.has(t.socket)) return;
        if (--t.active === 0) {
          t.idleSince = Date.now();
          if (this.closing) t.socket.end();
        }
      });
    }
    const failed = (error: unknown) => {
      this.options.onError(error, `serving ${req.method} ${req.url} over HTTP/1.1`);
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "internal error" }));
      } else res.destroy();
    };
    try {
      const pending = this.h1Handler(req, res);
      if (pending) pending.catch(failed);
    } catch (error) {
      failed(error);
    }
  };

  /** One hooks object for every HTTP/2 connection. */
  private readonly h2Hooks = { onRequest: (stream: ServerStream, head: RequestHead) => this.h2Handler(stream, head), onError: (error: unknown, context: string) => this.options.onError(error, context) };

  private readonly onNodeH2Request = (stream: ServerStream, head: RequestHead): void | Promise<void> => this.h2Handler(stream, head);

  // ---- connections ----

  private route(socket: net.Socket): void {
    const t: Tracked = { socket, acceptedAt: Date.now(), kind: "unknown", handshaken: false, active: 0, idleSince: Date.now() };
    this.tracked.set(socket, t);
    // Shared listeners, not closures per socket: idle connections are what a node holds most of.
    socket.once("close", this.forget);
    socket.on("error", destroyOnError);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const h2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (h2 && n < H2_PREFACE.length) return; // could still be either: wait for more
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      // Node's http2 reads the socket's handle itself, the buffered head included: it is not resumed here.
      if (h2 && this.nodeH2) return this.toNodeH2(t);
      if (h2) {
        t.kind = "h2";
        t.h2 = new H2Connection(socket, this.h2Hooks, this.options.h2Limits);
        if (this.closing) t.h2.goAway();
      } else {
        t.kind = "h1";
        this.h1.emit("connection", socket);
      }
      socket.resume();
    };
    socket.on("data", onData);
  }

  private toNodeH2(t: Tracked): void {
    t.kind = "node-h2";
    const onSession = (session: http2.Http2Session) => {
      t.nodeSession = session;
      session.on("stream", (stream: http2.ServerHttp2Stream) => {
        t.handshaken = true;
        t.active++;
        stream.once("close", () => {
          if (--t.active === 0) t.idleSince = Date.now();
        });
      });
    };
    this.nodeH2!.once("session", onSession);
    this.nodeH2!.emit("connection", t.socket);
    this.nodeH2!.off("session", onSession);
    if (this.closing) t.nodeSession?.close();
  }

  /** Once a second: connections past their handshake or idle deadline, and dead peers, are closed. */
  private sweep(): void {
    const now = Date.now();
    const { handshakeTimeoutMs, idleTimeoutMs } = this.options;
    for (const t of this.tracked.values()) {
      if (!t.handshaken && (t.h2 ? !t.h2.requestSeen : true)) {
        if (now - t.acceptedAt > handshakeTimeoutMs) this.close(t, `no request within ${handshakeTimeoutMs} ms`, 0);
        continue;
      }
      t.handshaken = true;
      if (t.h2) {
        if (t.h2.pingSentAt !== 0 && now - t.h2.pingSentAt > PING_TIMEOUT_MS) t.socket.destroy();
        else if (t.h2.idleSince !== 0 && now - t.h2.idleSince > idleTimeoutMs) this.close(t, "idle");
      } else if (t.active === 0 && now - t.idleSince > idleTimeoutMs) {
        this.close(t, "idle");
      }
    }
  }

  /** Closes a connection the sweep found past a deadline: GOAWAY first on HTTP/2, the socket after `graceMs`. */
  private close(t: Tracked, reason: string, graceMs?: number): void {
    if (t.h2) return t.h2.terminate(H2_ERROR.NO_ERROR, reason, graceMs);
    if (t.nodeSession && !t.nodeSession.destroyed) {
      t.nodeSession.goaway(H2_ERROR.NO_ERROR);
      t.nodeSession.destroy();
      return;
    }
    t.socket.destroy();
  }
}

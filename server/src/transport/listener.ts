import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";

// connect-node's adapter takes either server's request and response.
type Handler = (req: any, res: any) => void; // eslint-disable-line @typescript-eslint/no-explicit-any
/** Takes an HTTP/2 stream before any request/response objects exist; returns false to pass it on. */
type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

/** The client preface every prior-knowledge HTTP/2 connection starts with. */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * One port for HTTP/1.1 and cleartext HTTP/2 (prior knowledge): the first
 * bytes of each connection decide which server gets it.
 */
export class DualProtocolListener {
  private readonly tcp: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly h2Sessions = new Set<http2.Http2Session>();
  /** Requests in flight per HTTP/1.1 connection, to close idle ones at shutdown. */
  private readonly h1Active = new Map<net.Socket, number>();
  private closing = false;

  constructor(handler: Handler, streamHandler?: StreamHandler) {
    this.h1 = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, handler);
    this.h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => this.trackH1(req.socket, res));
    this.h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
    if (streamHandler) {
      // Node builds compatibility request/response objects in its own
      // 'stream' listener; streams the handler takes never get them.
      const [compat] = this.h2.listeners("stream") as Array<(...args: unknown[]) => void>;
      if (compat) {
        this.h2.removeListener("stream", compat);
        this.h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
          if (!streamHandler(stream, headers)) compat(stream, headers, ...rest);
        });
      }
    }
    this.h2.on("session", (session) => {
      this.h2Sessions.add(session);
      session.once("close", () => this.h2Sessions.delete(session));
    });
    this.tcp = net.createServer({ noDelay: true }, (socket) => this.route(socket));
  }

  listen(port: number, host: string): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.tcp.once("error", reject);
      this.tcp.listen(port, host, () => {
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
    for (const session of this.h2Sessions) session.close();
    for (const [socket, active] of this.h1Active) if (active === 0) socket.end();
  }

  /** Whether any connection is still open. */
  get busy(): boolean {
    return this.sockets.size > 0;
  }

  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  private trackH1(socket: net.Socket, res: http.ServerResponse): void {
    this.h1Active.set(socket, (this.h1Active.get(socket) ?? 0) + 1);
    if (this.closing) res.shouldKeepAlive = false;
    res.once("close", () => {
      const left = (this.h1Active.get(socket) ?? 1) - 1;
      this.h1Active.set(socket, left);
      if (this.closing && left === 0) socket.end();
    });
  }

  private route(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const h2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (h2 && n < H2_PREFACE.length) return; // could still be either: wait for more
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      if (h2) {
        // The HTTP/2 session reads what is buffered on its next tick; resuming
        // here would spill those bytes as 'data' events nobody listens to.
        this.h2.emit("connection", socket);
      } else {
        this.h1Active.set(socket, 0);
        socket.once("close", () => this.h1Active.delete(socket));
        this.h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  }
}

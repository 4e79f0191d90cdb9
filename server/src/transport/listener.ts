import * as http from "node:http";
import * as net from "node:net";
import { H2Connection, PREFACE as H2_PREFACE, type RequestHandler } from "./h2/connection.js";

/**
 * One port for HTTP/1.1 and cleartext HTTP/2 (prior knowledge): the first
 * bytes of each connection decide which server gets it.
 */
export class DualProtocolListener {
  private readonly tcp: net.Server;
  private readonly h1: http.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly h2Connections = new Set<H2Connection>();
  /** Requests in flight per HTTP/1.1 connection, to close idle ones at shutdown. */
  private readonly h1Active = new Map<net.Socket, number>();
  private closing = false;

  constructor(
    h1Handler: http.RequestListener,
    private readonly h2Handler: RequestHandler,
  ) {
    this.h1 = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, h1Handler);
    this.h1.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => this.trackH1(req.socket, res));
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
    for (const connection of this.h2Connections) connection.goAway();
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
        const connection = new H2Connection(socket, this.h2Handler);
        this.h2Connections.add(connection);
        socket.once("close", () => this.h2Connections.delete(connection));
        socket.resume();
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

import * as net from "node:net";

/**
 * A loopback TCP proxy a test controls, for injecting faults between clients
 * and a server: drop every connection at once, or freeze them (stop
 * forwarding without closing: a half-open connection), or point new
 * connections at another port.
 */
export class LoopbackProxy {
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  /** Frozen connections: no longer forwarded, closed only when the proxy closes. */
  private readonly frozen = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private constructor(
    private readonly server: net.Server,
    private targetPort: number,
  ) {}

  static async start(targetPort: number): Promise<LoopbackProxy> {
    const server = net.createServer();
    const proxy = new LoopbackProxy(server, targetPort);
    server.on("connection", (client) => proxy.accept(client));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  /** New connections go to this port from now on. */
  retarget(port: number): void {
    this.targetPort = port;
  }

  /** Closes every connection at once (both directions). */
  dropAll(): void {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Stops forwarding on every current connection without closing it. */
  freezeAll(): void {
    for (const pair of this.pairs) {
      pair.client.unpipe(pair.upstream);
      pair.upstream.unpipe(pair.client);
      pair.client.pause();
      pair.upstream.pause();
      this.frozen.add(pair);
    }
    this.pairs.clear(); // left to rot, as on a dead network path
  }

  async close(): Promise<void> {
    this.dropAll();
    for (const { client, upstream } of this.frozen) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    const pair = { client, upstream };
    this.pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}

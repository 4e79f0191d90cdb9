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
  /** When each connection was accepted (Date.now()), in order: when clients tried, whatever the server then took. */
  readonly acceptedAt: number[] = [];
  private constructor(
    private readonly server: net.Server,
    private targetPort: number,
  ) {}

  static async start(targetPort: number): Promise<LoopbackProxy> {
    const server = net.createServer();
    const proxy = new LoopbackProxy(server, targetPort);
    server.on("connection", (client) => {
      proxy.acceptedAt.push(Date.now());
      proxy.accept(client);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  /** While holding, new connections are accepted but nothing is forwarded: a server that stopped answering. */
  private holding = false;

  hold(on: boolean): void {
    this.holding = on;
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

  /** Stops forwarding on the most recently opened connection only (say, one pooled by a fetch runtime). */
  freezeNewest(): void {
    const pair = [...this.pairs].at(-1);
    if (!pair) return;
    pair.client.unpipe(pair.upstream);
    pair.upstream.unpipe(pair.client);
    pair.client.pause();
    pair.upstream.pause();
    this.pairs.delete(pair);
    this.frozen.add(pair);
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

  /** Closes the frozen connections: what was sent into them is lost. */
  dropFrozen(): void {
    for (const { client, upstream } of this.frozen) {
      client.destroy();
      upstream.destroy();
    }
    this.frozen.clear();
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
    if (this.holding) {
      client.on("error", () => {});
      client.pause();
      const upstream = new net.Socket();
      this.frozen.add({ client, upstream });
      return;
    }
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

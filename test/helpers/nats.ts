import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { removeDir, startServer, type ServerProcess } from "./server.js";

/** The NATS server these machines run (with JetStream). */
export const SHARED_NATS_URL = process.env.NATS_URL || "nats://127.0.0.1:4222";

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url.replace(/^nats:/, "http:"));
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(1000);
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("timeout", () => (socket.destroy(), resolve(false)));
    socket.once("error", () => resolve(false));
    socket.connect(Number(port || 4222), hostname);
  });
}

/**
 * Whether suites that need NATS can run. On a laptop without NATS they skip
 * with a loud message; under CI=true a missing service is a failure.
 */
export async function natsAvailable(): Promise<boolean> {
  if (await reachable(SHARED_NATS_URL)) return true;
  const message = `\n*** NATS not reachable at ${SHARED_NATS_URL}: NATS engine tests ${process.env.CI === "true" ? "FAIL" : "are SKIPPED"} (start nats-server -js) ***\n`;
  if (process.env.CI === "true") throw new Error(message);
  console.warn(message);
  return false;
}

export function natsServerInstalled(): boolean {
  const found = spawnSync("nats-server", ["--version"], { encoding: "utf8" }).status === 0;
  if (found) return true;
  const message = `\n*** nats-server not installed: NATS fault tests ${process.env.CI === "true" ? "FAIL" : "are SKIPPED"} ***\n`;
  if (process.env.CI === "true") throw new Error(message);
  console.warn(message);
  return false;
}

let prefixCounter = 0;
/** Streams this test file made on the shared NATS: deleted once its suites are done. */
const sharedStreams = new Set<string>();
afterAll(async () => {
  if (sharedStreams.size === 0) return;
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const nc = await connect({ servers: SHARED_NATS_URL });
  const jsm = await jetstreamManager(nc);
  for (const stream of sharedStreams) await jsm.streams.delete(stream).catch(() => undefined);
  sharedStreams.clear();
  await nc.close();
});

/** Subjects and a stream of their own on the shared NATS, so suites never see each other (and leave nothing behind). */
export function uniquePrefix(label: string): string {
  const prefix = `t${process.pid}-${label}-${Date.now().toString(36)}-${++prefixCounter}`;
  sharedStreams.add(`${prefix}-messages`);
  return prefix;
}

/** Server environment for a node on the NATS engine. */
export function natsEngineEnv(url: string, prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return { CHORUS_ENGINE: "nats", NATS_URL: url, CHORUS_NATS_PREFIX: prefix, ...extra };
}

/** The engines every behavioural suite runs against. */
export async function testEngines(label: string): Promise<Array<{ name: string; env: () => Record<string, string> }>> {
  const engines = [{ name: "memory", env: (): Record<string, string> => ({}) }];
  if (await natsAvailable()) engines.push({ name: "nats", env: () => natsEngineEnv(SHARED_NATS_URL, uniquePrefix(label)) });
  return engines;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** One private nats-server process (JetStream on), which a test may stop, kill and start again. */
export class NatsServer {
  private child: ChildProcess | undefined;
  private log = "";

  private constructor(
    readonly name: string,
    readonly port: number,
    private readonly args: string[],
    private readonly storeDir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get output(): string {
    return this.log;
  }

  /** A standalone server, or one member of a cluster (see startCluster). */
  static async create(name: string, cluster?: { port: number; routes: number[] }, extraArgs: string[] = []): Promise<NatsServer> {
    const port = await freePort();
    const storeDir = mkdtempSync(join(tmpdir(), `chorus-nats-${name}-`));
    const args = ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir, "-n", name];
    if (cluster) {
      args.push("--cluster_name", "chorus-test", "--cluster", `nats://127.0.0.1:${cluster.port}`);
      args.push("--routes", cluster.routes.map((p) => `nats://127.0.0.1:${p}`).join(","));
    }
    return new NatsServer(name, port, [...args, ...extraArgs], storeDir);
  }

  async start(): Promise<void> {
    if (this.child) return;
    const child = spawn("nats-server", this.args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    child.stdout!.on("data", (d) => (this.log += d));
    child.stderr!.on("data", (d) => (this.log += d));
    child.once("exit", () => {
      if (this.child === child) this.child = undefined;
    });
    const deadline = Date.now() + 10_000;
    while (!(await reachable(this.url))) {
      if (Date.now() > deadline) throw new Error(`nats-server ${this.name} did not start:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGKILL: the server vanishes mid-flight. */
  async kill(): Promise<void> {
    await this.signal("SIGKILL");
  }

  /** SIGTERM and wait. */
  async stop(): Promise<void> {
    await this.signal("SIGTERM");
  }

  /** Stops the server and removes its storage. */
  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.storeDir, { recursive: true, force: true });
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
  }
}

/** A 3-node (or n-node) JetStream cluster of private servers, started and waiting for each other. */
export async function startCluster(size = 3): Promise<NatsServer[]> {
  const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const servers = await Promise.all(clusterPorts.map((port, i) => NatsServer.create(`n${i + 1}`, { port, routes: clusterPorts.filter((p) => p !== port) })));
  await Promise.all(servers.map((s) => s.start()));
  return servers;
}

/**
 * Two Chorus nodes on the machine's NATS, with subjects and a stream of
 * their own, for the enclosing suite: started before its tests, stopped
 * (and their data removed) after them.
 */
export function natsNodesForSuite(label: string, extra: Record<string, string> = {}): { readonly a: ServerProcess; readonly b: ServerProcess } {
  const nodes: ServerProcess[] = [];
  beforeAll(async () => {
    const env = natsEngineEnv(SHARED_NATS_URL, uniquePrefix(label), extra);
    nodes.push(...(await Promise.all([startServer(env), startServer(env)])));
  });
  afterAll(async () => {
    for (const node of nodes) {
      await node.stop();
      removeDir(node.dataDir);
    }
  });
  return {
    get a() {
      return nodes[0]!;
    },
    get b() {
      return nodes[1]!;
    },
  };
}

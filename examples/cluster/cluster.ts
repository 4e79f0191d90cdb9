import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, Managed, portOpen, printed } from "./processes.js";

const SERVER = fileURLToPath(new URL("../../server/dist/main.mjs", import.meta.url));

export interface RunningCluster {
  /** The balancer: where every client connects (HTTP/1.1 and cleartext HTTP/2). */
  url: string;
  nats: Managed[];
  chorus: Managed[];
  balancer: Managed;
  /** Stops everything it started, and removes the data. */
  stop(): Promise<void>;
}

/**
 * Three NATS servers in one JetStream cluster, three Chorus nodes on it
 * (history replicated three times), and HAProxy in front, on loopback.
 * Needs `nats-server` and `haproxy` on PATH, and the built server
 * (`npm run build`).
 */
export async function startCluster(options: { port?: number; haproxy?: string; natsServer?: string } = {}): Promise<RunningCluster> {
  const dir = mkdtempSync(join(tmpdir(), "chorus-cluster-"));
  const natsPorts = await Promise.all([0, 1, 2].map(() => freePort()));
  const routePorts = await Promise.all([0, 1, 2].map(() => freePort()));
  const chorusPorts = await Promise.all([0, 1, 2].map(() => freePort()));
  const port = options.port ?? (await freePort());

  const nats = natsPorts.map(
    (p, i) =>
      new Managed(
        `nats-${i + 1}`,
        options.natsServer ?? "nats-server",
        ["-a", "127.0.0.1", "-p", String(p), "-js", "-sd", join(dir, `nats-${i + 1}`), "-n", `nats-${i + 1}`, "--cluster_name", "chorus", "--cluster", `nats://127.0.0.1:${routePorts[i]}`, "--routes", routePorts.filter((_, k) => k !== i).map((r) => `nats://127.0.0.1:${r}`).join(",")],
        {},
        () => portOpen(p),
      ),
  );
  const natsUrl = natsPorts.map((p) => `nats://127.0.0.1:${p}`).join(",");
  const chorus = chorusPorts.map(
    (p, i) =>
      new Managed(
        `chorus-${i + 1}`,
        process.execPath,
        ["--enable-source-maps", SERVER],
        { PORT: String(p), HOST: "127.0.0.1", CHORUS_NODE_ID: `chorus-${i + 1}`, CHORUS_ENGINE: "nats", NATS_URL: natsUrl, CHORUS_NATS_REPLICAS: "3", CHORUS_DATA_DIR: join(dir, `chorus-${i + 1}`), CHORUS_SHUTDOWN_GRACE_MS: "3000" },
        (m) => printed(m, /listening on http:\/\//, 60_000),
      ),
  );
  const config = join(dir, "haproxy.cfg");
  writeFileSync(config, haproxyConfig(port, chorusPorts));
  const balancer = new Managed("haproxy", options.haproxy ?? "haproxy", ["-db", "-f", config], {}, () => portOpen(port));

  const stop = async () => {
    await balancer.stop();
    await Promise.all(chorus.map((c) => c.stop()));
    await Promise.all(nats.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(nats.map((n) => n.start()));
    await Promise.all(chorus.map((c) => c.start()));
    await balancer.start();
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, nats, chorus, balancer, stop };
}

/**
 * The balancer, as the README's "Running several nodes" explains: one
 * cleartext port for HTTP/1.1 and HTTP/2 alike (HAProxy tells them apart
 * by the HTTP/2 preface), HTTP/2 to the nodes (gRPC needs it end to end),
 * timeouts long enough for streams that last hours, and a node taken out
 * as soon as its /readyz says so (it drains on SIGTERM). A browser
 * session's commands go to the node holding it: the SDK names it in a
 * `chorus-node` header, and each node's CHORUS_NODE_ID is its server name.
 */
export function haproxyConfig(port: number, nodes: number[]): string {
  return [
    "global",
    "  maxconn 4000",
    "defaults",
    "  mode http",
    "  timeout connect 2s",
    "  timeout http-request 10s",
    "  timeout client 1h",
    "  timeout server 1h",
    "  timeout tunnel 1h",
    "frontend chorus",
    `  bind 127.0.0.1:${port}`,
    "  default_backend nodes",
    "backend nodes",
    "  balance leastconn",
    // A browser session is a Listen stream on one node plus commands naming it: each command goes to
    // the node its chorus-node header names (the SDK sends it); everything else is balanced.
    ...nodes.map((_, i) => `  use-server chorus-${i + 1} if { req.hdr(chorus-node) -m str chorus-${i + 1} }`),
    "  option httpchk GET /readyz",
    "  http-check expect status 200",
    "  default-server check inter 500ms fall 1 rise 2 proto h2",
    ...nodes.map((p, i) => `  server chorus-${i + 1} 127.0.0.1:${p}`),
    "",
  ].join("\n");
}

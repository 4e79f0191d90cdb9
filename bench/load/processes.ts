// Processes the benchmarks start: a private nats-server and Chorus nodes
// (the compiled bundle, as `npm start` runs it), each on a free loopback
// port, killed (and their files removed) when the benchmark exits.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SERVER_BUNDLE } from "../../server/build.mjs";

const ROOT = resolve(import.meta.dirname, "../..");
const cleanup: Array<() => void> = [];
process.on("exit", () => cleanup.forEach((f) => f()));

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** A private nats-server with JetStream for this run, or NATS_URL when nats-server is not installed. */
export async function startNats(): Promise<string> {
  if (spawnSync("nats-server", ["--version"]).status !== 0) {
    if (!process.env.NATS_URL) throw new Error("nats-server is not installed and NATS_URL is not set");
    return process.env.NATS_URL;
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "chorus-bench-nats-"));
  const child = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], { stdio: "ignore" });
  cleanup.push(() => (child.kill("SIGKILL"), rmSync(dir, { recursive: true, force: true })));
  await sleep(500);
  return `nats://127.0.0.1:${port}`;
}

export function natsVersion(): string {
  return spawnSync("nats-server", ["--version"], { encoding: "utf8" }).stdout?.trim() || "NATS at NATS_URL";
}

/** A Chorus node on its own data directory, without publish rate limits; resolves once it listens. */
export async function startChorus(env: Record<string, string>): Promise<{ url: string; child: ChildProcess; dataDir: string }> {
  const dataDir = env.CHORUS_DATA_DIR ?? mkdtempSync(join(tmpdir(), "chorus-bench-"));
  const child = spawn(process.execPath, ["--enable-source-maps", SERVER_BUNDLE], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", CHORUS_DATA_DIR: dataDir, CHORUS_MAX_PUBLISH_RATE: "0", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  cleanup.push(() => (child.kill("SIGKILL"), rmSync(dataDir, { recursive: true, force: true })));
  const url = await new Promise<string>((res, rej) => {
    let out = "";
    const timer = setTimeout(() => rej(new Error(`chorus did not start: ${out}`)), 30_000);
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) (clearTimeout(timer), res(m[1]!));
    });
  });
  child.stdout!.resume();
  return { url, child, dataDir };
}

/** The Socket.IO peer (bench/servers/socketio.ts) on a free port; resolves once it listens. */
export async function startSocketIo(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", "bench/servers/socketio.ts"], { cwd: ROOT, env: { ...process.env, PORT: "0" }, stdio: ["ignore", "pipe", "inherit"] });
  cleanup.push(() => child.kill("SIGKILL"));
  const url = await new Promise<string>((res, rej) => {
    let out = "";
    const timer = setTimeout(() => rej(new Error(`socket.io did not start: ${out}`)), 20_000);
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) (clearTimeout(timer), res(m[1]!));
    });
  });
  return { url, child };
}

import { spawn } from "node:child_process";
import * as http from "node:http";
import { afterAll, beforeAll } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SERVER_BUNDLE } from "../../server/build.mjs";

const ROOT = resolve(import.meta.dirname, "../..");

export interface ServerProcess {
  url: string;
  port: number;
  dataDir: string;
  pid: number;
  /** Everything the server printed so far. */
  output(): string;
  /** SIGTERM and wait for the exit; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
}

/**
 * Starts the server bundle (built by the test run's global setup) as its own
 * process on a free port, the way `npm start` runs it, and waits for its
 * "listening" line.
 */
export async function startServer(
  env: Record<string, string> = {},
  dataDir?: string,
  options: { fdLimit?: number; bin?: string; onOutput?: (everything: string) => void } = {},
): Promise<ServerProcess> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), "chorus-test-"));
  // With fdLimit, the server runs under `ulimit -n` (exec keeps the pid the server's); with bin, that
  // `chorus` command (an installed package's) serves instead of the bundle.
  const [command, args] = options.bin
    ? [options.bin, ["serve"]]
    : options.fdLimit
      ? ["bash", ["-c", `ulimit -n ${options.fdLimit} && exec "$0" "$@"`, process.execPath, "--enable-source-maps", SERVER_BUNDLE]]
      : [process.execPath, ["--enable-source-maps", SERVER_BUNDLE]];
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", CHORUS_DATA_DIR: dir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  // What it printed so far goes to onOutput as it comes (before it listens, too).
  const print = (d: Buffer) => {
    out += d;
    options.onOutput?.(out);
  };
  child.stdout!.on("data", print);
  child.stderr!.on("data", print);
  const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));

  const port = await new Promise<number>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`server did not start within 15 s:\n${out}`)), 15_000);
    const check = () => {
      const match = /listening on http:\/\/[^:]+:(\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        child.stdout!.off("data", check);
        res(Number(match[1]));
      }
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`server exited with ${code} before listening:\n${out}`));
    });
  });

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dataDir: dir,
    pid: child.pid!,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export { ROOT };

/** Polls until `check` holds or the time is up (then throws with `what`). */
export async function eventually(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a promise expected to fail and returns its Connect code name. */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const { Code, ConnectError } = await import("@connectrpc/connect");
    return Code[ConnectError.from(error).code]!;
  }
  throw new Error("expected the call to fail, it succeeded");
}

/**
 * One server process for the enclosing suite: started before its tests,
 * stopped (and its data removed) after them. Read `server.url` inside tests.
 */
export function serverForSuite(env: Record<string, string> = {}): ServerProcess {
  let current: ServerProcess | undefined;
  const get = () => {
    if (!current) throw new Error("the suite's server is not running (use it inside tests)");
    return current;
  };
  beforeAll(async () => {
    current = await startServer(env);
  });
  afterAll(async () => {
    if (!current) return;
    await current.stop();
    removeDir(current.dataDir);
  });
  return {
    get url() {
      return get().url;
    },
    get port() {
      return get().port;
    },
    get dataDir() {
      return get().dataDir;
    },
    get pid() {
      return get().pid;
    },
    output: () => get().output(),
    stop: () => get().stop(),
    kill: () => get().kill(),
  };
}

/** Resident memory of a process in MB (Linux /proc), or NaN where unknown. */
export function rssMB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export interface Health {
  status: string;
  sessions: number;
  connections: { sockets: number; h1: number; h2: number };
}

/** The node's /healthz answer, over a connection of its own that closes at once (so it counts only itself). */
export function health(url: string): Promise<Health> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}/healthz`, { agent: false, headers: { connection: "close" } }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve(JSON.parse(body) as Health));
    });
    req.on("error", reject);
  });
}

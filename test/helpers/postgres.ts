import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import pg from "pg";

const BIN = "/usr/lib/postgresql/15/bin";

// No vitest imports here: the benchmarks start their PostgreSQL with this too.
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface PostgresProcess {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** Stops it (fast shutdown) and removes its files. */
  stop(): Promise<void>;
}

/**
 * Whether suites that need a private PostgreSQL can run. On a laptop
 * without it they skip with a loud message; under CI=true a missing
 * PostgreSQL is a failure.
 */
export function postgresInstalled(): boolean {
  if (existsSync(join(BIN, "postgres"))) return true;
  const message = `\n*** PostgreSQL 15 not installed (${BIN}): PostgreSQL change tests ${process.env.CI === "true" ? "FAIL" : "are SKIPPED"} ***\n`;
  if (process.env.CI === "true") throw new Error(message);
  console.warn(message);
  return false;
}

/** PostgreSQL refuses to run as root: then it runs as the `postgres` system user (setpriv execs, so signals reach it). */
const asPostgres = (command: string, args: string[]): [string, string[]] =>
  process.getuid?.() === 0 ? ["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", command, ...args]] : [command, args];

/**
 * A private PostgreSQL 15 with wal_level=logical on a free loopback port,
 * in a directory of its own (trust auth, fsync off: a test instance; commits stay synchronous, as by default, since logical decoding reads only flushed WAL).
 */
export async function startPostgres(): Promise<PostgresProcess> {
  const dir = mkdtempSync(join(tmpdir(), "chorus-pg-"));
  if (process.getuid?.() === 0) chownSync(dir, Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim()), Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim()));
  const data = join(dir, "data");
  const [initCmd, initArgs] = asPostgres(join(BIN, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
  const init = spawnSync(initCmd, initArgs, { encoding: "utf8" });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  const [cmd, args] = asPostgres(join(BIN, "postgres"), [
    "-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "wal_level=logical",
    "-c", "max_replication_slots=10", "-c", "max_wal_senders=10", "-c", "fsync=off", "-c", "track_commit_timestamp=on",
  ]);
  const child: ChildProcess = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (d) => (log += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      break;
    } catch {
      await client.end().catch(() => {});
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`PostgreSQL did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    port,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGINT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The database changes benchmark, run by `npm run bench` (or alone with
// `npm run bench -- --only=changes`): commit→client latency at 1000
// changes a second to 100 subscribers with 100 distinct filters, on the
// embedded PGlite and on a private PostgreSQL; the changes a second one
// node sustains; PGlite's start-up time and memory. The peer, measured in
// the same run against the same table, is what the reference docs' change
// tracker does: poll the table every 200 ms.
import { readFileSync } from "node:fs";
import pg from "pg";
import { RealtimeClient } from "../clients/src/node.js";
import { createServerSdk, type ServerSdk } from "../clients/src/server-sdk.js";
import { postgresInstalled, startPostgres } from "../test/helpers/postgres.js";
import { Histogram } from "./load/histogram.js";
import { sleep, startChorus } from "./load/processes.js";

const SUBSCRIBERS = 100;
const RATE = 1000;
const POLL_MS = 200;
const WARMUP_SECONDS = 2;

export interface ChangesRow {
  figure: string;
  pglite: number | undefined;
  postgres: number | undefined;
  unit: string;
  goal?: string;
}

const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
const r2 = (n: number) => Math.round(n * 100) / 100;
const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
};

/** Something that writes rows: `insert(rows)` commits them (with their send time in `at`). */
type Writer = (sql: string, params: unknown[]) => Promise<unknown>;

interface SourceRun {
  chorus: Histogram;
  /** The same during the warm-up, the first seconds after a (re)start. */
  warm: Histogram;
  poll: Histogram;
  delivered: number;
  expected: number;
  sustained: number;
  /** Cores busy during the latency run: the Chorus node's, and this process's (writer, subscribers, poller). */
  serverCpu: number;
  loadCpu: number;
}

/**
 * 100 subscribers, subscriber i with filter `k=eq.(i mod 10)&id=neq.-i`:
 * 100 distinct filters, each change seen by 10 of them. Rows are written at
 * RATE a second with their send time; every delivery is timed, and a
 * poller reads the table every 200 ms the way the reference's tracker does.
 */
async function measure(url: string, serverPid: number, write: Writer, seconds: number, poll: (since: number) => Promise<Array<{ id: number; at: number }>>): Promise<SourceRun> {
  const chorus = new Histogram();
  const warm = new Histogram();
  let delivered = 0;
  // A client holds one channel per topic: each subscriber is a client of its own.
  const subscribers = Array.from({ length: SUBSCRIBERS }, (_, i) => {
    const client = new RealtimeClient({ url });
    const channel = client.channel("bench_changes", { filter: `k=eq.${i % 10}&id=neq.-${i}` });
    channel.on("INSERT", ({ data }) => {
      if (data.at < 0) return void warm.record(Date.now() + data.at); // the warm-up's rows carry minus their send time
      if (data.at === 0) return; // the sustained phase's rows
      chorus.record(Date.now() - data.at);
      delivered++;
    });
    channel.subscribe();
    return { client, channel };
  });
  await Promise.all(subscribers.map((s) => s.channel.ready()));

  const pollHistogram = new Histogram();
  let polling = true;
  let seen = 0;
  const poller = (async () => {
    while (polling) {
      await sleep(POLL_MS);
      for (const row of await poll(seen)) {
        pollHistogram.record(Date.now() - row.at);
        seen = Math.max(seen, row.id);
      }
    }
  })();

  const total = RATE * seconds;
  const base = Math.floor(Math.random() * 1e9) * 1000;
  /** Writes `count` rows at RATE a second; `timed` rows carry their send time, the others minus it (recorded apart). */
  const writeAtRate = async (count: number, firstId: number, timed: boolean) => {
    const started = performance.now();
    const inFlight: Array<Promise<unknown>> = [];
    for (let n = 0; n < count; n++) {
      const due = started + (n * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      inFlight.push(write("insert into bench_changes (id, k, at, pad) values (?, ?, ?, ?)", [firstId + n, n % 10, timed ? Date.now() : -Date.now(), "x".repeat(64)]));
      if (inFlight.length >= 64) await Promise.all(inFlight.splice(0));
    }
    await Promise.all(inFlight);
  };
  // Warm-up at the same rate, recorded apart: the first second of a fresh process is V8 compiling (PGlite's WebAssembly most).
  await writeAtRate(RATE * WARMUP_SECONDS, base + 10_000_000, false);
  const serverCpu0 = cpuSeconds(serverPid);
  const ownCpu0 = process.cpuUsage();
  const started = performance.now();
  await writeAtRate(total, base, true);
  const wall = (performance.now() - started) / 1000;
  const serverCpu = (cpuSeconds(serverPid) - serverCpu0) / wall;
  const own = process.cpuUsage(ownCpu0);
  const loadCpu = (own.user + own.system) / 1e6 / wall;
  const expected = total * (SUBSCRIBERS / 10);
  const deadline = Date.now() + 10_000;
  while (delivered < expected && Date.now() < deadline) await sleep(50);
  await sleep(POLL_MS * 2);
  polling = false;
  await poller;

  for (const s of subscribers) s.client.disconnect();

  // Sustained: as fast as 4 writers commit 100-row statements, until the last change is stored
  // (read off the table topic's history: one client could not read 10⁴ changes a second, nor need to).
  const reader = new RealtimeClient({ url });
  const lastSeq = async () => (await reader.channel("bench_changes").getHistory(1))[0]?.seq ?? 0;
  const from = await lastSeq();
  const burst = 40_000;
  const t0 = performance.now();
  const statements = burst / 100;
  const workers = Array.from({ length: 4 }, async (_, w) => {
    for (let s = w; s < statements; s += 4) {
      const first = base + total + s * 100;
      await write(`insert into bench_changes (id, k, at, pad) select g, g % 10, 0, 'y' from generate_series(${first}, ${first + 99}) g`, []);
    }
  });
  await Promise.all(workers);
  const until = Date.now() + 60_000;
  let stored = 0;
  while ((stored = (await lastSeq()) - from) < burst && Date.now() < until) await sleep(10);
  const sustained = Math.round(stored / ((performance.now() - t0) / 1000));
  reader.disconnect();
  return { chorus, warm, poll: pollHistogram, delivered, expected, sustained, serverCpu, loadCpu };
}

export async function changesBench(quick: boolean): Promise<{ rows: ChangesRow[]; notes: string[] }> {
  const seconds = quick ? 4 : 10;
  const rows: ChangesRow[] = [];
  const notes: string[] = [];
  const runs: { pglite?: SourceRun; postgres?: SourceRun } = {};

  // PGlite: first use (initdb) and a reopen, then the run.
  {
    let node = await startChorus({ CHORUS_MAX_PUBLISH_RATE: "0" });
    const dataDir = node.dataDir;
    let sdk: ServerSdk = createServerSdk({ url: node.url });
    const before = rss(node.child.pid!);
    let t = performance.now();
    await sdk.db.exec("create table bench_changes (id bigint primary key, k int not null, at double precision not null, pad text)");
    const firstOpen = performance.now() - t;
    await sleep(500);
    const firstRss = rss(node.child.pid!) - before;
    sdk.close();
    node.child.kill("SIGTERM");
    await new Promise((r) => node.child.once("exit", r));
    node = await startChorus({ CHORUS_MAX_PUBLISH_RATE: "0", CHORUS_DATA_DIR: dataDir });
    sdk = createServerSdk({ url: node.url });
    const reopenBefore = rss(node.child.pid!);
    t = performance.now();
    await sdk.db.query("select 1");
    const reopen = performance.now() - t;
    await sleep(500);
    const reopenRss = rss(node.child.pid!) - reopenBefore;
    rows.push({ figure: "PGlite first use in a new data directory (initdb), until the first statement is answered", pglite: r2(firstOpen), postgres: undefined, unit: "ms" });
    rows.push({ figure: "PGlite first use: server memory it adds (RSS)", pglite: Math.round(firstRss / 2 ** 20), postgres: undefined, unit: "MB" });
    rows.push({ figure: "PGlite reopened after a restart, until the first statement is answered", pglite: r2(reopen), postgres: undefined, unit: "ms" });
    rows.push({ figure: "PGlite reopened: server memory it adds (RSS)", pglite: Math.round(reopenRss / 2 ** 20), postgres: undefined, unit: "MB" });
    runs.pglite = await measure(node.url, node.child.pid!, (sql, params) => sdk.db.query(sql, params), seconds, async (since) => sdk.db.query<{ id: number; at: number }>("select id, at from bench_changes where id > ? and at > 0 order by id", [since]));
    sdk.close();
    node.child.kill("SIGKILL");
  }

  if (postgresInstalled()) {
    const postgres = await startPostgres();
    try {
      const node = await startChorus({ CHORUS_MAX_PUBLISH_RATE: "0", DATABASE_URL: postgres.url });
      const admin = new pg.Client({ connectionString: postgres.url });
      await admin.connect();
      await admin.query("create table bench_changes (id bigint primary key, k int not null, at double precision not null, pad text)");
      await admin.query("alter table bench_changes replica identity full");
      await sleep(300);
      const pool = new pg.Pool({ connectionString: postgres.url, max: 8 });
      // The private server stops at the end: its goodbye to idle connections is not an error here.
      pool.on("error", () => {});
      admin.on("error", () => {});
      const write: Writer = (sql, params) => {
        let n = 0;
        return pool.query(sql.replace(/\?/g, () => `$${++n}`), params);
      };
      try {
        runs.postgres = await measure(node.url, node.child.pid!, write, seconds, async (since) =>
          (await admin.query<{ id: string; at: number }>("select id::text, at from bench_changes where id > $1 and at > 0 order by id", [since])).rows.map((r) => ({ id: Number(r.id), at: r.at })),
        );
      } catch (error) {
        console.error(error);
        notes.push(`The PostgreSQL run failed: ${(error as Error).message}`);
      } finally {
        await pool.end().catch(() => {});
        await admin.end().catch(() => {});
        node.child.kill("SIGKILL");
      }
    } finally {
      await postgres.stop();
    }
  } else notes.push("PostgreSQL 15 is not installed here: its column is empty.");

  const both = (f: (r: SourceRun) => number) => ({ pglite: runs.pglite && f(runs.pglite), postgres: runs.postgres && f(runs.postgres) });
  rows.push({ figure: `commit→client, ${RATE} changes/s to ${SUBSCRIBERS} subscribers with ${SUBSCRIBERS} distinct filters (10 see each change), p50`, ...both((r) => r2(r.chorus.percentile(50))), unit: "ms" });
  rows.push({ figure: "the same, p99", ...both((r) => r2(r.chorus.percentile(99))), unit: "ms", goal: "≤ 50 ms" });
  rows.push({ figure: `the same during the ${WARMUP_SECONDS} s warm-up right after the (re)start, p99`, ...both((r) => r2(r.warm.percentile(99))), unit: "ms" });
  rows.push({ figure: "the same, delivered of expected", ...both((r) => r2((100 * r.delivered) / r.expected)), unit: "%" });
  rows.push({ figure: `peer: polling the table every ${POLL_MS} ms (the reference's tracker), commit→seen p50`, ...both((r) => r2(r.poll.percentile(50))), unit: "ms" });
  rows.push({ figure: "peer: the same, p99", ...both((r) => r2(r.poll.percentile(99))), unit: "ms" });
  rows.push({ figure: "meanwhile, cores busy: the Chorus node (PGlite runs inside it)", ...both((r) => r2(r.serverCpu)), unit: "cores" });
  rows.push({ figure: "meanwhile, cores busy: the benchmark's writer, 100 subscribers and poller", ...both((r) => r2(r.loadCpu)), unit: "cores" });
  rows.push({ figure: "Chorus p99 / polling p99", ...both((r) => r2(r.chorus.percentile(99) / r.poll.percentile(99))), unit: "×" });
  rows.push({ figure: "changes a second one node sustains (4 writers, 100-row statements, until stored in the topic's history)", ...both((r) => r.sustained), unit: "changes/s" });
  return { rows, notes };
}

export function changesTable(result: { rows: ChangesRow[]; notes: string[] }): string {
  const cell = (v: number | undefined, unit: string) => (v === undefined ? "–" : `${v} ${unit}`);
  return [
    `Database changes: one Chorus node (memory engine) on the embedded PGlite and on a private PostgreSQL 15 (wal_level=logical, loopback), subscribers in the benchmark process. Rows carry their send time (PGlite: the time the back end sends its statement, so Chorus' Query call is included); latency is measured after a ${WARMUP_SECONDS} s warm-up at the same rate; the peer polls the same table every ${POLL_MS} ms as the reference's change tracker does.`,
    "",
    ...result.notes.map((n) => `- ${n}`),
    "",
    "| figure | PGlite | PostgreSQL | goal |",
    "|---|---:|---:|---|",
    ...result.rows.map((r) => `| ${r.figure} | ${cell(r.pglite, r.unit)} | ${cell(r.postgres, r.unit)} | ${r.goal ?? ""} |`),
  ].join("\n");
}

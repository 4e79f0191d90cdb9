// `npm run bench [-- --quick] [-- --only=broadcast-1000,steady,rooms-ramp,presence,changes,streams,ingest,decode,flood]`
// Runs each scenario against Chorus and its peers (Socket.IO, a raw HTTP/2
// server that batches like Chorus), with load generators in their own
// processes on loopback, and prints one table with Chorus' ratios.
import { fork, spawn, type ChildProcess } from "node:child_process";
import { buildServer, SERVER_BUNDLE } from "../server/build.mjs";
import { currentCommit } from "./commit.js";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import type { ServerKind } from "./load/adapters.js";
import { Histogram } from "./load/histogram.js";
import { presenceBench, presenceTable } from "./presence.js";
import { changesBench, changesTable } from "./changes.js";
import { streamsBench, streamsTable } from "./streams.js";
import { decodeBench, decodeTable } from "./decode.js";
import { ingestBench, ingestTable } from "./ingest.js";
import { floodBench, floodTable } from "./flood.js";
import type { ToWorker, WorkerConfig, WorkerReport } from "./load/worker.js";

const ROOT = resolve(import.meta.dirname, "..");
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const only = args.find((a) => a.startsWith("--only="))?.slice(7).split(",");
const kinds: ServerKind[] = (args.find((a) => a.startsWith("--servers="))?.slice(10).split(",") as ServerKind[]) ?? ["chorus", "chorus-node-h2", "socketio", "h2"];

interface Scenario {
  name: string;
  what: string;
  connections: number;
  /** Members per room; 0 puts everyone on one topic. */
  roomSize: number;
  /** A separate publisher process. */
  publisher?: { mode: "window"; window: number } | { mode: "rate"; perSecond: number };
  /** Every subscriber also publishes this many messages per second to its room. */
  memberRate?: number;
  durationMs: number;
  idle?: boolean;
  /** Also measured the way browsers connect (Listen over HTTP/1.1), shown without ratios. */
  browserShape?: boolean;
}

const seconds = (full: number, fast: number) => (quick ? fast : full) * 1000;
const allScenarios: Scenario[] = [
  { name: "broadcast-1000", what: "1 publisher → 1000 subscribers, one topic, as fast as accepted", connections: 1000, roomSize: 0, publisher: { mode: "window", window: 32 }, durationMs: seconds(8, 4) },
  ...(quick && !only?.includes("broadcast-5000") ? [] : [{ name: "broadcast-5000", what: "1 publisher → 5000 subscribers, one topic, as fast as accepted", connections: 5000, roomSize: 0, publisher: { mode: "window" as const, window: 32 }, durationMs: seconds(8, 4) }]),
  { name: "steady-1000", what: "1 publisher at 100 msg/s → 1000 subscribers", connections: 1000, roomSize: 0, publisher: { mode: "rate", perSecond: 100 }, durationMs: seconds(10, 4) },
  { name: `rooms-${quick ? 1000 : 5000}`, what: `${quick ? 1000 : 5000} connections in rooms of 10, each publishing 1 msg/s`, connections: quick ? 1000 : 5000, roomSize: 10, memberRate: 1, durationMs: seconds(10, 4) },
  { name: `idle-${quick ? 2000 : 10000}`, what: `${quick ? 2000 : 10000} idle subscribed connections`, connections: quick ? 2000 : 10000, roomSize: 1, durationMs: 2000, idle: true, browserShape: true },
];
const scenarios = allScenarios.filter((s) => !only || only.some((o) => s.name.startsWith(o)));

interface Result {
  scenario: string;
  server: ServerKind;
  connections: number;
  deliveredPerSec: number;
  expected?: number;
  lost?: number;
  p50: number;
  p99: number;
  max: number;
  cpuSeconds: number;
  rssMB: number;
  rssPerConnKB: number;
}

// ---------- processes ----------

// Chorus runs as `npm start` runs it: the compiled bundle. The peers are
// single files run through the TypeScript loader.
const SERVER_ENTRY: Record<ServerKind, string[]> = {
  chorus: ["--enable-source-maps", SERVER_BUNDLE],
  "chorus-listen": ["--enable-source-maps", SERVER_BUNDLE],
  "chorus-node-h2": ["--enable-source-maps", SERVER_BUNDLE],
  socketio: ["--import", "tsx", "bench/servers/socketio.ts"],
  h2: ["--import", "tsx", "bench/servers/h2-raw.ts"],
};

async function startServer(kind: ServerKind): Promise<{ child: ChildProcess; url: string; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "chorus-bench-"));
  // BENCH_PROFILE=dir writes a V8 CPU profile of each server process there.
  const profile = process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const child = spawn(process.execPath, [...profile, ...SERVER_ENTRY[kind]], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      CHORUS_DATA_DIR: dataDir,
      CHORUS_MAX_SUBSCRIPTIONS: "100",
      CHORUS_MAX_CONNECTIONS: "20000",
      CHORUS_MAX_PUBLISH_RATE: "1000000",
      ...(kind === "chorus-node-h2" ? { CHORUS_HTTP2: "node" } : {}),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((res, rej) => {
    let out = "";
    const timer = setTimeout(() => rej(new Error(`${kind} did not start: ${out}`)), 20_000);
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]!);
      }
    });
  });
  child.stdout!.resume();
  return { child, url, dataDir };
}

const CLK_TCK = 100;
function procStats(pid: number): { cpu: number; rss: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime + stime
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
  return { cpu, rss };
}

class Worker {
  private readonly child: ChildProcess;
  private readonly replies: Array<(m: { ready?: number; report?: WorkerReport; error?: string }) => void> = [];
  readonly ready: Promise<number>;

  constructor(config: WorkerConfig) {
    this.child = fork(join(ROOT, "bench/load/worker.ts"), [JSON.stringify(config)], { execArgv: ["--import", "tsx"], cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.ready = new Promise((res, rej) => {
      this.child.once("exit", (code) => rej(new Error(`load worker exited with ${code}`)));
      this.replies.push((m) => (m.error ? rej(new Error(m.error)) : res(m.ready!)));
    });
    this.child.on("message", (m: { ready?: number; report?: WorkerReport; error?: string }) => this.replies.shift()?.(m));
  }

  send(message: ToWorker): void {
    this.child.send(message);
  }

  report(): Promise<WorkerReport> {
    return new Promise((res) => {
      this.replies.push((m) => res(m.report!));
      this.send({ cmd: "report" });
    });
  }

  exit(): void {
    this.child.removeAllListeners("exit");
    this.send({ cmd: "exit" });
    setTimeout(() => this.child.kill("SIGKILL"), 2000).unref();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------- one scenario against one server ----------

async function run(scenario: Scenario, kind: ServerKind): Promise<Result> {
  const server = await startServer(kind);
  const pid = server.child.pid!;
  const workers: Worker[] = [];
  // Warm up with a few connections first, so code loaded and compiled on
  // first use is not charged to the connections being measured.
  const warmUp = new Worker({ kind, url: server.url, connections: 10, offset: 0, topic: "bench/warm-up", roomSize: 0, subscribe: true, payloadBytes: 100 });
  try {
    await warmUp.ready;
    await sleep(500);
    const base = procStats(pid);
    // At least two: one generator process reading 100k messages a second
    // saturates a core and would be what the scenario measures.
    const processes = Math.min(4, Math.max(2, Math.ceil(scenario.connections / 1250)));
    const share = Math.ceil(scenario.connections / processes);
    for (let p = 0; p < processes; p++) {
      const connections = Math.min(share, scenario.connections - p * share);
      workers.push(
        new Worker({
          kind,
          url: server.url,
          connections,
          offset: p * share,
          topic: `bench/${scenario.name}`,
          roomSize: scenario.roomSize,
          subscribe: true,
          publish: scenario.memberRate ? { mode: "rate", perSecond: scenario.memberRate } : undefined,
          payloadBytes: 100,
        }),
      );
    }
    await Promise.all(workers.map((w) => w.ready));

    if (scenario.idle) {
      await sleep(scenario.durationMs);
      const s = procStats(pid);
      return result(scenario, kind, new Histogram(), 0, 0, s.cpu - base.cpu, s.rss, base.rss);
    }

    const subscribers = [...workers];
    if (scenario.publisher) {
      const pub = new Worker({ kind, url: server.url, connections: 1, offset: 0, topic: `bench/${scenario.name}`, roomSize: 0, subscribe: false, publish: scenario.publisher, payloadBytes: 100 });
      workers.push(pub);
      await pub.ready;
    }
    const publishers = scenario.publisher ? [workers.at(-1)!] : workers;
    const steady = scenario.publisher?.mode === "rate";

    const publishedSoFar = async () => (await Promise.all(publishers.map((w) => w.report()))).reduce((n, r) => n + r.published, 0);
    let publishedBefore = 0;
    publishers.forEach((w) => w.send({ cmd: "publish" }));
    await sleep(1500); // warm-up: JIT, timers spread, queues at their working size
    if (steady) {
      // Losses are counted exactly: the warm-up's messages all arrive before counting starts.
      publishers.forEach((w) => w.send({ cmd: "stop-publish" }));
      await sleep(500);
      publishedBefore = await publishedSoFar();
      subscribers.forEach((w) => w.send({ cmd: "measure" }));
      publishers.forEach((w) => w.send({ cmd: "publish" }));
    } else {
      subscribers.forEach((w) => w.send({ cmd: "measure" }));
    }
    const cpu0 = procStats(pid).cpu;
    await sleep(scenario.durationMs);
    const cpu1 = procStats(pid).cpu;
    let published = 0;
    if (steady) {
      publishers.forEach((w) => w.send({ cmd: "stop-publish" }));
      await sleep(1000); // let the last messages arrive before counting losses
      published = (await publishedSoFar()) - publishedBefore;
    }
    const reports = await Promise.all(subscribers.map((w) => w.report()));
    publishers.forEach((w) => w.send({ cmd: "stop-publish" }));
    const histogram = new Histogram();
    let received = 0;
    for (const r of reports) {
      histogram.merge(r.histogram);
      received += r.received;
    }
    const end = procStats(pid);
    const res = result(scenario, kind, histogram, received, scenario.durationMs / 1000, cpu1 - cpu0, end.rss, base.rss);
    if (steady) {
      res.expected = published * scenario.connections;
      res.lost = res.expected - received;
    }
    return res;
  } finally {
    for (const w of workers) w.exit();
    warmUp.exit();
    const exited = new Promise((r) => server.child.once("exit", r));
    server.child.kill("SIGTERM");
    // A profiled server writes its profile on exit: give it the time to.
    await Promise.race([exited, sleep(process.env.BENCH_PROFILE ? 15_000 : 300)]);
    server.child.kill("SIGKILL");
    rmSync(server.dataDir, { recursive: true, force: true });
  }
}

function result(s: Scenario, kind: ServerKind, h: Histogram, received: number, secs: number, cpu: number, rss: number, baseRss: number): Result {
  const r2 = (n: number) => Math.round(n * 100) / 100;
  return {
    scenario: s.name,
    server: kind,
    connections: s.connections,
    deliveredPerSec: secs ? Math.round(received / secs) : 0,
    p50: r2(h.percentile(50)),
    p99: r2(h.percentile(99)),
    max: r2(h.max),
    cpuSeconds: r2(cpu),
    rssMB: r2(rss / 2 ** 20),
    rssPerConnKB: r2((rss - baseRss) / s.connections / 1024),
  };
}

// ---------- rooms ramp: the highest publish rate each server sustains ----------

interface RampStep {
  /** Messages each member publishes a second. */
  perMember: number;
  /** Publishes a second, all members together, as measured. */
  publishesPerSec: number;
  deliveredPerSec: number;
  /** Delivered of (published × room size), over the step. */
  deliveredRatio: number;
  p99: number;
  cpuCores: number;
}

interface RampResult {
  server: ServerKind;
  connections: number;
  steps: RampStep[];
  /** The highest publishes a second of a step with p99 ≤ the bound and everything delivered. */
  sustained: number;
}

const RAMP_P99_MS = 50;
const RAMP_RATES = [0.4, 0.55, 0.7, 0.85, 1, 1.15, 1.3, 1.5, 1.75, 2, 2.5, 3, 4, 5, 6, 8];

/**
 * Connections in rooms of 10, every member publishing to its room at a rate
 * raised step by step until the p99 latency passes 50 ms or messages stop
 * arriving in full: the highest rate that passed is the server's.
 */
async function runRamp(kind: ServerKind): Promise<RampResult> {
  const connections = quick ? 1000 : 5000;
  const roomSize = 10;
  const stepMs = seconds(3, 2);
  const server = await startServer(kind);
  const pid = server.child.pid!;
  const workers: Worker[] = [];
  const steps: RampStep[] = [];
  try {
    const processes = Math.min(4, Math.max(2, Math.ceil(connections / 1250)));
    const share = Math.ceil(connections / processes);
    for (let p = 0; p < processes; p++) {
      workers.push(
        new Worker({
          kind,
          url: server.url,
          connections: Math.min(share, connections - p * share),
          offset: p * share,
          topic: "bench/ramp",
          roomSize,
          subscribe: true,
          publish: { mode: "rate", perSecond: RAMP_RATES[0]! },
          payloadBytes: 100,
        }),
      );
    }
    await Promise.all(workers.map((w) => w.ready));
    workers.forEach((w) => w.send({ cmd: "publish" }));
    await sleep(1000);
    for (const perMember of RAMP_RATES) {
      workers.forEach((w) => w.send({ cmd: "rate", perSecond: perMember }));
      await sleep(1000); // timers spread over the interval, queues at their working size
      const before = (await Promise.all(workers.map((w) => w.report()))).reduce((n, r) => n + r.published, 0);
      workers.forEach((w) => w.send({ cmd: "measure" }));
      const cpu0 = procStats(pid).cpu;
      await sleep(stepMs);
      const cpu1 = procStats(pid).cpu;
      const reports = await Promise.all(workers.map((w) => w.report()));
      const published = reports.reduce((n, r) => n + r.published, 0) - before;
      const histogram = new Histogram();
      let received = 0;
      for (const r of reports) {
        histogram.merge(r.histogram);
        received += r.received;
      }
      const step: RampStep = {
        perMember,
        publishesPerSec: Math.round(published / (stepMs / 1000)),
        deliveredPerSec: Math.round(received / (stepMs / 1000)),
        deliveredRatio: Math.round((received / Math.max(1, published * roomSize)) * 1000) / 1000,
        p99: Math.round(histogram.percentile(99) * 100) / 100,
        cpuCores: Math.round(((cpu1 - cpu0) / (stepMs / 1000)) * 100) / 100,
      };
      steps.push(step);
      console.log(`  ${kind}: ${perMember}/s per member → ${step.publishesPerSec} publishes/s, p99 ${step.p99} ms, delivered ${(step.deliveredRatio * 100).toFixed(1)} %`);
      if (step.p99 > RAMP_P99_MS || step.deliveredRatio < 0.97) break;
    }
  } finally {
    for (const w of workers) w.exit();
    server.child.kill("SIGKILL");
    rmSync(server.dataDir, { recursive: true, force: true });
  }
  const passed = steps.filter((s) => s.p99 <= RAMP_P99_MS && s.deliveredRatio >= 0.97);
  return { server: kind, connections, steps, sustained: passed.length ? Math.max(...passed.map((s) => s.publishesPerSec)) : 0 };
}

function rampTable(results: RampResult[]): string {
  const chorus = results.find((r) => r.server === "chorus");
  const lines = [
    `Rooms ramp: ${results[0]?.connections} connections in rooms of 10, every member publishing to its room (each message delivered to the 10 members), the rate raised step by step until p99 > ${RAMP_P99_MS} ms or deliveries fall short (< 97 %). The bracket is Chorus' sustained rate divided by the peer's.`,
    "",
    "| server | highest sustained publishes/s | deliveries/s there | steps (per member/s → publishes/s, p99 ms, delivered, server cores) |",
    "|---|---:|---:|---|",
  ];
  for (const r of results) {
    const at = r.steps.find((s) => s.publishesPerSec === r.sustained);
    const ratio = chorus && r !== chorus && r.sustained ? ` (${(chorus.sustained / r.sustained).toFixed(2)}×)` : "";
    const steps = r.steps.map((s) => `${s.perMember} → ${s.publishesPerSec}, ${s.p99}, ${(s.deliveredRatio * 100).toFixed(1)} %, ${s.cpuCores}`).join("; ");
    lines.push(`| ${r.server} | ${r.sustained}${ratio} | ${at?.deliveredPerSec ?? "–"} | ${steps} |`);
  }
  return lines.join("\n");
}

// ---------- report ----------

function versions(): Record<string, string> {
  const v = (p: string) => JSON.parse(readFileSync(join(ROOT, "node_modules", p, "package.json"), "utf8")).version as string;
  return { node: process.version, "@connectrpc/connect-node": v("@connectrpc/connect-node"), "@bufbuild/protobuf": v("@bufbuild/protobuf"), "socket.io": v("socket.io") };
}

function table(results: Result[]): string {
  const lines = [
    "| scenario | server | delivered msg/s | p50 ms | p99 ms | max ms | lost | server CPU s | RSS MB | RSS/conn KB |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  // Each peer figure is followed by Chorus' figure divided by it, in brackets.
  const fmt = (value: number, chorus: number | undefined) => {
    if (!value || Number.isNaN(value)) return "–";
    return chorus === undefined || Number.isNaN(chorus) ? `${value}` : `${value} (${(chorus / value).toFixed(2)}×)`;
  };
  for (const r of results) {
    const c = r.server === "chorus" || r.server === "chorus-listen" ? undefined : results.find((x) => x.scenario === r.scenario && x.server === "chorus");
    lines.push(
      `| ${r.scenario} | ${r.server} | ${fmt(r.deliveredPerSec, c?.deliveredPerSec)} | ${fmt(r.p50, c?.p50)} | ${fmt(r.p99, c?.p99)} | ${fmt(r.max, c?.max)} | ${r.lost ?? ""} | ${fmt(r.cpuSeconds, c?.cpuSeconds)} | ${fmt(r.rssMB, c?.rssMB)} | ${fmt(r.rssPerConnKB, c?.rssPerConnKB)} |`,
    );
  }
  return lines.join("\n");
}

await buildServer();
const started = new Date();
const results: Result[] = [];
for (const scenario of scenarios) {
  const shapes: ServerKind[] = scenario.browserShape && kinds.includes("chorus") && !kinds.includes("chorus-listen") ? ["chorus", "chorus-listen", ...kinds.filter((k) => k !== "chorus")] : kinds;
  for (const kind of shapes) {
    process.stdout.write(`${scenario.name} on ${kind} … `);
    const r = await run(scenario, kind);
    results.push(r);
    console.log(`${r.deliveredPerSec} msg/s, p99 ${r.p99} ms, ${r.rssPerConnKB} KB/conn`);
  }
}

// The rooms ramp: Chorus and Socket.IO, each raised until its p99 passes 50 ms.
const ramp: RampResult[] = [];
if (!only || only.includes("rooms-ramp")) {
  for (const kind of (["chorus", "socketio"] as const).filter((k) => kinds.includes(k))) {
    console.log(`rooms ramp on ${kind} …`);
    ramp.push(await runRamp(kind));
  }
}

// Database changes: PGlite and a private PostgreSQL, the peer a 200 ms poller.
let changes: Awaited<ReturnType<typeof changesBench>> | undefined;
if (!only || only.includes("changes")) {
  process.stdout.write("database changes, PGlite and PostgreSQL … ");
  changes = await changesBench(quick);
  console.log("done");
}

// Ingest: one back end emitting as fast as accepted, the peer a Socket.IO client.
let ingest: Awaited<ReturnType<typeof ingestBench>> | undefined;
if (!only || only.includes("ingest")) {
  process.stdout.write("ingest, Chorus and Socket.IO … ");
  ingest = await ingestBench(quick);
  console.log("done");
}

// Decode: one Node client's receive path in-process, the peer Socket.IO's parsers and emitter.
let decode: Awaited<ReturnType<typeof decodeBench>> | undefined;
if (!only || only.includes("decode")) {
  process.stdout.write("client decode, Chorus and Socket.IO … ");
  decode = await decodeBench(quick);
  console.log("done");
}

// Flood: a bystander pair's latency under a flood, against the same pair without it.
let flood: Awaited<ReturnType<typeof floodBench>> | undefined;
if (!only || only.includes("flood")) {
  process.stdout.write("flood … ");
  flood = await floodBench(quick);
  console.log("done");
}

// AI token streams: 1000 viewers of one stream, the peer a Socket.IO broadcast per token.
let streams: Awaited<ReturnType<typeof streamsBench>> | undefined;
if (!only || only.includes("streams")) {
  process.stdout.write("token streams, Chorus and Socket.IO … ");
  streams = await streamsBench(quick);
  console.log("done");
}

// Presence: its own setup (two nodes on NATS), its peer a message on the same path.
let presence: Awaited<ReturnType<typeof presenceBench>> | undefined;
if (!only || only.includes("presence")) {
  process.stdout.write("presence, a room of 1000 across two nodes … ");
  presence = await presenceBench(quick);
  console.log("done");
}

const machine = { cpus: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`, memoryGiB: Math.round(totalmem() / 2 ** 30), kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim() };
const report = { date: started.toISOString(), mode: quick ? "quick" : "full", commit: currentCommit(ROOT), machine, versions: versions(), scenarios: scenarios.map(({ name, what }) => ({ name, what })), results, ramp, presence, changes, streams, ingest, decode, flood };
const md = [
  `# Chorus benchmark (${report.mode}), ${report.date.slice(0, 10)}`,
  "",
  `Commit ${report.commit}. Machine: ${machine.cpus}, ${machine.memoryGiB} GiB, Linux ${machine.kernel}. Versions: ${Object.entries(report.versions).map(([k, v]) => `${k} ${v}`).join(", ")}.`,
  "Server and load generators on one machine, loopback, generators in their own processes; 100-byte JSON payloads.",
  "In a peer's row, the bracket after each figure is Chorus' figure divided by that peer's: above 1 for msg/s means Chorus delivers more; below 1 for latency, CPU and memory means Chorus needs less. `chorus` is the bidi session over HTTP/2 (Node and back-end clients) on Chorus' own HTTP/2; `chorus-node-h2` is the same with `CHORUS_HTTP2=node` (Node's http2 module), the escape hatch; `chorus-listen` is the way browsers connect (a Listen stream over HTTP/1.1, commands as unary calls).",
  "",
  ...scenarios.map((s) => `- **${s.name}**: ${s.what}`),
  "",
  ...(results.length ? [table(results), ""] : []),
  ...(ramp.length ? [rampTable(ramp), ""] : []),
  ...(presence ? [presenceTable(presence), ""] : []),
  ...(changes ? [changesTable(changes), ""] : []),
  ...(streams ? [streamsTable(streams), ""] : []),
  ...(ingest ? [ingestTable(ingest), ""] : []),
  ...(decode ? [decodeTable(decode), ""] : []),
  ...(flood ? [floodTable(flood), ""] : []),
  `Reproduce: \`npm run bench${quick ? " -- --quick" : ""}\` (${Math.round((Date.now() - started.getTime()) / 1000)} s).`,
  "",
].join("\n");
console.log(`\n${results.length ? table(results) : ""}\n${ramp.length ? rampTable(ramp) : ""}\n${presence ? presenceTable(presence) : ""}\n${changes ? changesTable(changes) : ""}\n${streams ? streamsTable(streams) : ""}\n${ingest ? ingestTable(ingest) : ""}\n${decode ? decodeTable(decode) : ""}\n${flood ? floodTable(flood) : ""}\n`);
const dir = join(ROOT, "bench/results");
mkdirSync(dir, { recursive: true });
// A partial run (--only) is kept apart: it does not replace the day's whole run nor latest.md.
const stamp = `${report.date.slice(0, 10)}-${report.mode}${only ? `-only-${only.join("+")}` : ""}`;
writeFileSync(join(dir, `${stamp}.json`), JSON.stringify(report, null, 2) + "\n");
writeFileSync(join(dir, `${stamp}.md`), md);
if (!only) writeFileSync(join(dir, "latest.md"), md);
console.log(`results: bench/results/${stamp}.json, bench/results/${stamp}.md${only ? "" : " (also bench/results/latest.md)"}`);
process.exit(0);

// The token stream benchmark, run by `npm run bench` (or alone with
// `npm run bench -- --only=streams`): 1000 viewers of one stream at 50 and
// at 500 chunks a second, per-chunk latency from the producer's write to
// the viewer, the server's CPU, and the same tokens sent as one Socket.IO
// room broadcast each, in the same run; and how long a late joiner waits
// for a 4000-token stream's text so far.
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { RealtimeClient } from "../clients/src/node.js";
import { createServerSdk } from "../clients/src/server-sdk.js";
import { publisher } from "./load/adapters.js";
import { Histogram } from "./load/histogram.js";
import { sleep, startChorus, startSocketIo } from "./load/processes.js";
import type { StreamWorkerConfig, StreamWorkerReport, ToStreamWorker } from "./load/stream-worker.js";

const ROOT = resolve(import.meta.dirname, "..");
const VIEWERS = 1000;
const RATES = [50, 500];
const TOPIC = "ai/bench";

export interface StreamsRow {
  figure: string;
  chorus: number;
  socketio?: number;
  unit: string;
  goal?: string;
}

class Worker {
  private readonly child: ChildProcess;
  private readonly replies: Array<(m: { ready?: boolean; report?: StreamWorkerReport }) => void> = [];
  readonly ready: Promise<void>;

  constructor(config: StreamWorkerConfig) {
    this.child = fork(join(ROOT, "bench/load/stream-worker.ts"), [JSON.stringify(config)], { execArgv: ["--import", "tsx"], cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.ready = new Promise((res, rej) => {
      this.child.once("exit", (code) => rej(new Error(`stream worker exited with ${code}`)));
      this.replies.push(() => res());
    });
    this.child.on("message", (m: { ready?: boolean; report?: StreamWorkerReport }) => this.replies.shift()?.(m));
  }

  send(message: ToStreamWorker): void {
    this.child.send(message);
  }

  report(): Promise<StreamWorkerReport> {
    return new Promise((res) => {
      this.replies.push((m) => res(m.report!));
      this.child.send({ cmd: "report" });
    });
  }
}

const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

/** Writes one token (`<send time>|`) at `rate` a second for `seconds`, paced by the clock. */
async function paced(rate: number, seconds: number, write: (token: string) => void | Promise<void>): Promise<void> {
  const total = rate * seconds;
  const started = performance.now();
  for (let n = 0; n < total; n++) {
    const wait = started + (n * 1000) / rate - performance.now();
    if (wait > 1) await sleep(wait);
    await write(`${(performance.timeOrigin + performance.now()).toFixed(3)}|`);
  }
}

interface RateRun {
  latency: Histogram;
  deliveries: number;
  /** Cores the server was busy while measuring. */
  cpu: number;
}

/** Viewers in two processes; one run per rate, each with a second's warm-up. */
async function measure(kind: "chorus" | "socketio", url: string, pid: number, write: (rate: number, warm: boolean) => Promise<void>): Promise<Map<number, RateRun>> {
  const workers = [0, 1].map(() => new Worker({ kind, url, viewers: VIEWERS / 2, topic: TOPIC }));
  await Promise.all(workers.map((w) => w.ready));
  const runs = new Map<number, RateRun>();
  try {
    for (const rate of RATES) {
      await write(rate, true);
      for (const w of workers) w.send({ cmd: "measure", on: true });
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      await write(rate, false);
      await sleep(300);
      const cpu = (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000);
      for (const w of workers) w.send({ cmd: "measure", on: false });
      const latency = new Histogram();
      let deliveries = 0;
      for (const report of await Promise.all(workers.map((w) => w.report()))) {
        latency.merge(report.histogram);
        deliveries += report.deliveries;
      }
      runs.set(rate, { latency, deliveries, cpu });
    }
  } finally {
    for (const w of workers) w.send({ cmd: "exit" });
  }
  return runs;
}

export async function streamsBench(quick: boolean): Promise<{ rows: StreamsRow[]; notes: string[] }> {
  const seconds = quick ? 4 : 10;
  const rows: StreamsRow[] = [];
  const notes: string[] = [];

  // Chorus: one stream per rate, written by a back end through sdk.socket.stream.
  const node = await startChorus({ CHORUS_MAX_CONNECTIONS: "20000", CHORUS_MAX_STREAM_BYTES: String(32 * 2 ** 20) });
  let chorus: Map<number, RateRun>;
  let lateJoin: Histogram;
  try {
    const sdk = createServerSdk({ url: node.url });
    chorus = await measure("chorus", node.url, node.child.pid!, async (rate, warm) => {
      const writer = sdk.socket.stream(TOPIC, { event: "answer" });
      await paced(rate, warm ? 1 : seconds, (token) => writer.write(token));
      await writer.end();
    });

    // A late joiner: a stream 4000 tokens long so far, a new viewer subscribes; until it has the text so far.
    lateJoin = new Histogram();
    const writer = sdk.socket.stream(TOPIC, { event: "answer" });
    for (let n = 0; n < 4000; n++) writer.write(`token${n} `);
    await sleep(200);
    for (let k = 0; k < (quick ? 5 : 20); k++) {
      const client = new RealtimeClient({ url: node.url });
      await client.connect();
      const t0 = performance.now();
      const caughtUp = new Promise<void>((res) => client.channel(TOPIC).onStream((s) => s.chunks >= 4000 && res()));
      client.channel(TOPIC).subscribe();
      await caughtUp;
      lateJoin.record(performance.now() - t0);
      client.disconnect();
    }
    await writer.end();
    sdk.close();
  } finally {
    node.child.kill("SIGKILL");
  }

  // Socket.IO: each token one room broadcast (`io.to(room).emit`), the way its users stream tokens.
  const io = await startSocketIo();
  let socketio: Map<number, RateRun>;
  try {
    const pub = await publisher("socketio", io.url);
    let refused = 0;
    socketio = await measure("socketio", io.url, io.child.pid!, async (rate, warm) => {
      const pending: Array<Promise<void>> = [];
      // Under 500 broadcasts a second to 1000 sockets Socket.IO can miss its own pings and drop the publisher: counted, not fatal.
      await paced(rate, warm ? 1 : seconds, (token) => void pending.push(pub.publish(TOPIC, token).catch(() => void refused++)));
      await Promise.all(pending);
    });
    if (refused > 0) notes.push(`Socket.IO: ${refused} token broadcasts were never acknowledged (its server dropped the publisher's connection under the load).`);
    pub.close();
  } finally {
    io.child.kill("SIGKILL");
  }

  const r2 = (n: number) => Math.round(n * 100) / 100;
  for (const rate of RATES) {
    const c = chorus.get(rate)!;
    const s = socketio.get(rate)!;
    rows.push({ figure: `${rate} chunks/s → ${VIEWERS} viewers: write→viewer latency per chunk, p50`, chorus: r2(c.latency.percentile(50)), socketio: r2(s.latency.percentile(50)), unit: "ms" });
    rows.push({ figure: "the same, p99", chorus: r2(c.latency.percentile(99)), socketio: r2(s.latency.percentile(99)), unit: "ms", goal: rate === 50 ? "≤ 25 ms" : undefined });
    rows.push({ figure: "the same, frames delivered a second (chunks coalesced per flush; Socket.IO: one per token)", chorus: Math.round(c.deliveries / seconds), socketio: Math.round(s.deliveries / seconds), unit: "/s" });
    rows.push({ figure: "the same, server CPU", chorus: r2(c.cpu), socketio: r2(s.cpu), unit: "cores" });
  }
  rows.push({ figure: "a late joiner of a 4000-token stream: subscribe → the text so far, p50", chorus: r2(lateJoin.percentile(50)), unit: "ms" });
  rows.push({ figure: "the same, max", chorus: r2(lateJoin.max), unit: "ms" });
  notes.push(`Each rate runs ${seconds} s after a 1 s warm-up; viewers in two processes of ${VIEWERS / 2}; latency over every token of one delivery in 8.`);
  return { rows, notes };
}

export function streamsTable(result: { rows: StreamsRow[]; notes: string[] }): string {
  const ratio = (c: number, s: number | undefined, unit: string) => (s === undefined || !s ? "" : ` (${(unit === "/s" ? s / c : c / s).toFixed(2)}×)`);
  return [
    `AI token streams: one Chorus node (memory engine), one stream into a topic with ${VIEWERS} viewers, written by a back end with sdk.socket.stream; the peer sends each token as one Socket.IO room broadcast. The bracket is Chorus' figure divided by Socket.IO's (frames: Socket.IO's divided by Chorus').`,
    "",
    ...result.notes.map((n) => `- ${n}`),
    "",
    "| figure | Chorus | Socket.IO (per-token broadcast) | goal |",
    "|---|---:|---:|---|",
    ...result.rows.map((r) => `| ${r.figure} | ${r.chorus} ${r.unit}${ratio(r.chorus, r.socketio, r.unit)} | ${r.socketio === undefined ? "" : `${r.socketio} ${r.unit}`} | ${r.goal ?? ""} |`),
  ].join("\n");
}

// The flood benchmark, run by `npm run bench` (or alone with
// `npm run bench -- --only=flood`): a bystander pair's publish→receive
// latency on a node under a flood (300 connection attempts against a limit
// of 150, then 20 clients publishing as fast as they can against a rate of
// 50 a second each), as a ratio to the same pair on the same node without
// it. test/e2e/flood.test.ts checks the limits themselves.
import { fork } from "node:child_process";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { RealtimeClient } from "../clients/src/node.js";
import { Histogram } from "./load/histogram.js";
import { sleep, startChorus } from "./load/processes.js";

const ROOT = resolve(import.meta.dirname, "..");

export interface FloodRow {
  figure: string;
  quiet: number;
  flooded: number;
  unit: string;
}

/** The bystanders: one publishes 20 messages a second, the other receives them. */
async function bystanders(pub: RealtimeClient, sub: RealtimeClient, count: number): Promise<{ latency: Histogram; lost: number }> {
  const topic = "chat/bystander";
  const sent = new Map<number, number>();
  const latency = new Histogram();
  let received = 0;
  const listener = ({ data }: { data: { n: number } }) => {
    latency.record(performance.now() - sent.get(data.n)!);
    received++;
  };
  sub.channel(topic).on("m", listener);
  for (let n = 0; n < count; n++) {
    sent.set(n, performance.now());
    await pub.channel(topic).publish("m", { n });
    await sleep(50);
  }
  await sleep(500);
  sub.channel(topic).off("m", listener);
  return { latency, lost: count - received };
}

export async function floodBench(quick: boolean): Promise<{ rows: FloodRow[]; notes: string[] }> {
  const count = quick ? 60 : 200;
  const node = await startChorus({ CHORUS_MAX_CONNECTIONS: "150", CHORUS_MAX_PUBLISH_RATE: "50" });
  try {
    const pub = new RealtimeClient({ url: node.url, token: "calm-pub" });
    const sub = new RealtimeClient({ url: node.url, token: "calm-sub" });
    sub.channel("chat/bystander").subscribe();
    await sub.channel("chat/bystander").ready();
    await bystanders(pub, sub, 20); // warm-up
    const quiet = await bystanders(pub, sub, count);
    const flood = fork(join(ROOT, "bench/load/flood-worker.ts"), [node.url], { execArgv: ["--import", "tsx"], cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const admitted = await new Promise<number>((res) => flood.once("message", (m: { admitted: number }) => res(m.admitted)));
    const flooded = await bystanders(pub, sub, count);
    flood.kill("SIGTERM");
    await new Promise((r) => flood.once("exit", r));
    pub.disconnect();
    sub.disconnect();
    const r2 = (n: number) => Math.round(n * 100) / 100;
    return {
      rows: [
        { figure: "bystander publish→receive, p50", quiet: r2(quiet.latency.percentile(50)), flooded: r2(flooded.latency.percentile(50)), unit: "ms" },
        { figure: "the same, p99", quiet: r2(quiet.latency.percentile(99)), flooded: r2(flooded.latency.percentile(99)), unit: "ms" },
        { figure: "the same, max", quiet: r2(quiet.latency.max), flooded: r2(flooded.latency.max), unit: "ms" },
        { figure: "bystander messages lost", quiet: quiet.lost, flooded: flooded.lost, unit: "" },
      ],
      notes: [`${admitted} of the flood's 300 connection attempts were admitted (limit 150, 2 bystanders); the bystander pair sends ${count} messages at 20 a second in each phase.`],
    };
  } finally {
    node.child.kill("SIGKILL");
  }
}

export function floodTable(result: { rows: FloodRow[]; notes: string[] }): string {
  return [
    "Flood: one node (memory engine) with 150 sessions at most and 50 publishes a second per user, a bystander pair on it, then a flood from its own process: 300 connection attempts, and 20 admitted clients publishing as fast as they can. The bracket is the flooded figure divided by the quiet one.",
    "",
    ...result.notes.map((n) => `- ${n}`),
    "",
    "| figure | quiet | under the flood |",
    "|---|---:|---:|",
    ...result.rows.map((r) => `| ${r.figure} | ${r.quiet} ${r.unit} | ${r.flooded} ${r.unit}${r.quiet > 0 ? ` (${(r.flooded / r.quiet).toFixed(2)}×)` : ""} |`),
  ].join("\n");
}

// The presence benchmark, run by `npm run bench` (or alone with
// `npm run bench -- --only=presence`): a room of 1000 tracked members
// across two Chorus nodes on a private NATS, half on each node, each member
// also a subscriber. Its peer, measured in the same run on the same
// connections, is a message of the same size sent to the same room: a
// presence update rides the message fan-out path, so the ratio says what
// presence costs on top of it.
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { RealtimeClient } from "../clients/src/node.js";
import { Histogram } from "./load/histogram.js";
import type { Kind, PresenceWorkerConfig, PresenceWorkerReport, ToPresenceWorker } from "./load/presence-worker.js";
import { sleep, startChorus, startNats } from "./load/processes.js";

const ROOT = resolve(import.meta.dirname, "..");
const MEMBERS = 1000;
const ROOM = "room/bench";

export interface PresenceRow {
  figure: string;
  presence: number;
  /** The same figure for a message of the same size to the same room (absent where it has no meaning). */
  message?: number;
  unit: string;
  goal?: string;
}

class PresenceWorker {
  private readonly child: ChildProcess;
  private readonly replies: Array<(m: { ready?: number; report?: PresenceWorkerReport; done?: boolean; error?: string }) => void> = [];
  readonly ready: Promise<number>;

  constructor(config: PresenceWorkerConfig) {
    this.child = fork(join(ROOT, "bench/load/presence-worker.ts"), [JSON.stringify(config)], { execArgv: ["--import", "tsx"], cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.ready = new Promise((res, rej) => {
      this.child.once("exit", (code) => rej(new Error(`presence worker exited with ${code}`)));
      this.replies.push((m) => (m.error ? rej(new Error(m.error)) : res(m.ready!)));
    });
    this.child.on("message", (m: { ready?: number; report?: PresenceWorkerReport; done?: boolean }) => this.replies.shift()?.(m));
  }

  /** Sends a command and resolves with the worker's answer. */
  ask(message: ToPresenceWorker): Promise<{ report?: PresenceWorkerReport; done?: boolean }> {
    return new Promise((res) => {
      if (message.cmd !== "exit") this.replies.push(res);
      this.child.send(message);
      if (message.cmd === "exit") res({});
    });
  }
}

const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

/** Merged reports of both workers for one kind. */
async function collect(workers: PresenceWorker[], kind: Kind): Promise<{ latency: Histogram; lastByN: Map<number, number>; received: number; refused: string[] }> {
  const latency = new Histogram();
  const lastByN = new Map<number, number>();
  let received = 0;
  const refused: string[] = [];
  for (const w of workers) {
    const { report } = await w.ask({ cmd: "report" });
    latency.merge(report!.latency[kind]);
    received += report!.received[kind];
    refused.push(...report!.refused);
    for (const [n, ms] of Object.entries(report!.lastByN[kind])) lastByN.set(Number(n), Math.max(lastByN.get(Number(n)) ?? 0, ms));
  }
  return { latency, lastByN, received, refused };
}

/** Drives `count` of `kind` at `perSecond` in total, half from each node's members, and waits for them to arrive. */
async function run(workers: PresenceWorker[], kind: Kind, perSecond: number, count: number): Promise<{ latency: Histogram; lastByN: Map<number, number>; received: number; expected: number; refused: string[] }> {
  for (const w of workers) await w.ask({ cmd: "reset" });
  const half = count / workers.length;
  await Promise.all(workers.map((w, i) => w.ask({ cmd: "drive", kind, perSecond: perSecond / workers.length, count: half, firstN: i * half })));
  const expected = count * MEMBERS;
  const deadline = Date.now() + 10_000;
  let result = await collect(workers, kind);
  while (result.received < expected && Date.now() < deadline) {
    await sleep(200);
    result = await collect(workers, kind);
  }
  return { ...result, expected };
}

const r2 = (n: number) => Math.round(n * 100) / 100;

export async function presenceBench(quick: boolean): Promise<{ rows: PresenceRow[]; notes: string[] }> {
  const natsUrl = await startNats();
  const env = { CHORUS_ENGINE: "nats", NATS_URL: natsUrl, CHORUS_NATS_PREFIX: `presence${Date.now().toString(36)}`, CHORUS_MAX_CONNECTIONS: "20000", CHORUS_MAX_SUBSCRIPTIONS: "100" };
  const nodes = await Promise.all([startChorus(env), startChorus(env)]);
  const workers = nodes.map((node, i) => new PresenceWorker({ url: node.url, room: ROOM, members: MEMBERS / 2, offset: (i * MEMBERS) / 2 }));
  const rows: PresenceRow[] = [];
  const notes: string[] = [];
  try {
    const setupStart = performance.now();
    await Promise.all(workers.map((w) => w.ready));
    // Every member is known on both nodes once a new subscriber's sync names all of them.
    const probe = new RealtimeClient({ url: nodes[1]!.url, token: "probe" });
    await probe.connect();
    for (;;) {
      const stats = await probe.channel(ROOM).presenceStats();
      if (stats.connections === MEMBERS) break;
      await sleep(100);
    }
    probe.disconnect();
    notes.push(`${MEMBERS} members joined (half on each node, each a subscriber) in ${((performance.now() - setupStart) / 1000).toFixed(1)} s.`);

    // A new subscriber's initial sync: from subscribe() to its presence:sync naming all 1000, on either node.
    const sync = new Histogram();
    for (let k = 0; k < (quick ? 6 : 20); k++) {
      const client = new RealtimeClient({ url: nodes[k % 2]!.url, token: `newcomer-${k}` });
      await client.connect();
      const t0 = performance.now();
      const synced = new Promise<number>((res) => client.channel(ROOM).on("presence:sync", ({ data }) => res(data.members.length)));
      client.channel(ROOM).subscribe();
      const count = await synced;
      sync.record(performance.now() - t0);
      if (count !== MEMBERS) throw new Error(`a new subscriber's sync named ${count} members, not ${MEMBERS}`);
      client.disconnect();
    }
    rows.push({ figure: `a new subscriber's initial sync (subscribe → presence:sync with ${MEMBERS} members), p50`, presence: r2(sync.percentile(50)), unit: "ms" });
    rows.push({ figure: "the same, max", presence: r2(sync.max), unit: "ms", goal: "≤ 200 ms" });

    // Memory, measured before the update phases (whose garbage would make RSS move more than the members do):
    // every member also tracks in 15 rooms nobody watches (7500 more members per node; the track rate allows 20 at once).
    const rooms = 15;
    await sleep(2000);
    const before = nodes.map((n) => rss(n.child.pid!));
    await Promise.all(workers.map((w) => w.ask({ cmd: "extra", rooms })));
    await sleep(2000);
    const grown = nodes.map((n, i) => rss(n.child.pid!) - before[i]!);
    const perMember = grown.reduce((a, b) => a + b, 0) / (MEMBERS * rooms);

    // One update at a time (5 a second), reaching all 1000 members.
    const single = quick ? 20 : 50;
    const lone: Record<Kind, Awaited<ReturnType<typeof run>>> = { p: await run(workers, "p", 5, single), m: await run(workers, "m", 5, single) };
    const allReached = (k: Kind) => {
      const h = new Histogram();
      for (const ms of lone[k].lastByN.values()) h.record(ms);
      return h;
    };
    rows.push({ figure: `one update at a time → ${MEMBERS} subscribers over two nodes, delivery p50`, presence: r2(lone.p.latency.percentile(50)), message: r2(lone.m.latency.percentile(50)), unit: "ms" });
    rows.push({ figure: "the same, delivery p99", presence: r2(lone.p.latency.percentile(99)), message: r2(lone.m.latency.percentile(99)), unit: "ms", goal: "≤ 100 ms" });
    rows.push({ figure: `the same, until the last of ${MEMBERS} has it, p99 over updates`, presence: r2(allReached("p").percentile(99)), message: r2(allReached("m").percentile(99)), unit: "ms" });

    // 100 updates a second, sustained.
    const seconds = quick ? 5 : 15;
    const sustained: Record<Kind, Awaited<ReturnType<typeof run>>> = { p: await run(workers, "p", 100, 100 * seconds), m: await run(workers, "m", 100, 100 * seconds) };
    rows.push({ figure: `100 updates/s for ${seconds} s → ${MEMBERS} subscribers (100 000 deliveries/s), delivered`, presence: sustained.p.received / sustained.p.expected, message: sustained.m.received / sustained.m.expected, unit: "of all" });
    rows.push({ figure: "the same, delivery p50", presence: r2(sustained.p.latency.percentile(50)), message: r2(sustained.m.latency.percentile(50)), unit: "ms" });
    rows.push({ figure: "the same, delivery p99", presence: r2(sustained.p.latency.percentile(99)), message: r2(sustained.m.latency.percentile(99)), unit: "ms" });
    rows.push({ figure: "the same, delivery max", presence: r2(sustained.p.latency.max), message: r2(sustained.m.latency.max), unit: "ms" });
    const refused = [...lone.p.refused, ...sustained.p.refused];
    if (refused.length) notes.push(`Refused updates: ${refused.length} (first: ${refused[0]}).`);

    rows.push({ figure: `memory per tracked member (RSS growth for ${MEMBERS * rooms} more members, 64-byte states)`, presence: Math.round(perMember), unit: "bytes" });
  } finally {
    for (const w of workers) await w.ask({ cmd: "exit" });
    for (const n of nodes) n.child.kill("SIGKILL");
  }
  return { rows, notes };
}

/** The results as a Markdown section for the benchmark report. */
export function presenceTable(result: { rows: PresenceRow[]; notes: string[] }): string {
  const value = (v: number | undefined, unit: string) => (v === undefined ? "" : unit === "of all" ? `${(v * 100).toFixed(2)} %` : `${v} ${unit}`);
  return [
    `Presence: a room of ${MEMBERS} tracked members across two Chorus nodes on NATS (500 on each, every member also a subscriber), load generators in two processes. The peer is a message of the same size sent to the same room over the same connections; the bracket is presence divided by message.`,
    "",
    ...result.notes.map((n) => `- ${n}`),
    "",
    "| figure | presence | message (peer) | goal |",
    "|---|---:|---:|---|",
    ...result.rows.map((r) => `| ${r.figure} | ${value(r.presence, r.unit)}${r.message !== undefined && r.unit !== "of all" ? ` (${(r.presence / r.message).toFixed(2)}×)` : ""} | ${value(r.message, r.unit)} | ${r.goal ?? ""} |`),
  ].join("\n");
}

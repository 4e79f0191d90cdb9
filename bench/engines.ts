// `npm run bench:engines [-- --quick]`
// The NATS engine against the memory engine, measured in the same run:
// publish→deliver latency (NATS: publisher and subscriber on two different
// nodes), history page time on a topic holding 100 000 messages, and
// persisted-publish throughput by durability mode (the embedded engine with
// CHORUS_FSYNC=never, its default, and always; NATS for reference).
// Needs nats-server (a private one is started on a free port) or NATS_URL.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { RealtimeClient } from "../clients/src/node.js";
import { buildServer } from "../server/build.mjs";
import { currentCommit } from "./commit.js";
import { Histogram } from "./load/histogram.js";
import { natsVersion, sleep, startChorus, startNats } from "./load/processes.js";

const ROOT = resolve(import.meta.dirname, "..");
const quick = process.argv.includes("--quick");
const LATENCY_MESSAGES = quick ? 500 : 2000;
const LATENCY_RATE = 200; // per second
const HISTORY_MESSAGES = quick ? 10_000 : 100_000;
const HISTORY_QUERIES = quick ? 100 : 300;
const THROUGHPUT_MESSAGES = quick ? 5_000 : 20_000;
const THROUGHPUT_PUBLISHERS = 4;

/** Publishes at a steady rate from one node; the subscriber on the other measures publish→deliver. */
async function latency(pubUrl: string, subUrl: string, persist: boolean): Promise<Histogram> {
  const topic = `bench/latency-${persist ? "p" : "e"}-${Date.now()}`;
  const sub = new RealtimeClient({ url: subUrl });
  const pub = new RealtimeClient({ url: pubUrl });
  const histogram = new Histogram();
  let received = 0;
  sub.channel(topic).on("m", ({ data }) => {
    histogram.record(performance.now() - data.at);
    received++;
  }).subscribe();
  await sub.channel(topic).ready();
  await pub.connect();
  const start = performance.now();
  for (let i = 0; i < LATENCY_MESSAGES; i++) {
    const due = start + (i * 1000) / LATENCY_RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    void pub.channel(topic).publish("m", { at: performance.now(), pad: "x".repeat(64) }, { persist });
  }
  const deadline = Date.now() + 10_000;
  while (received < LATENCY_MESSAGES && Date.now() < deadline) await sleep(20);
  sub.disconnect();
  pub.disconnect();
  if (received < LATENCY_MESSAGES) throw new Error(`latency run lost ${LATENCY_MESSAGES - received} messages`);
  return histogram;
}

/** Fills one topic, then times newest pages and pages back from random points. */
async function history(url: string): Promise<{ fillSeconds: number; newest: Histogram; paged: Histogram }> {
  const topic = `bench/history-${Date.now()}`;
  const client = new RealtimeClient({ url });
  const channel = client.channel(topic);
  const times: number[] = [];
  const t0 = performance.now();
  for (let done = 0; done < HISTORY_MESSAGES; done += 1000) {
    const batch = await Promise.all(Array.from({ length: 1000 }, (_, k) => channel.publish("m", { n: done + k, pad: "x".repeat(64) }, { persist: true })));
    for (const r of batch) times.push(r.timestamp);
  }
  const fillSeconds = (performance.now() - t0) / 1000;
  const newest = new Histogram();
  const paged = new Histogram();
  for (let q = 0; q < HISTORY_QUERIES; q++) {
    let t = performance.now();
    const page = await channel.getHistory(50);
    newest.record(performance.now() - t);
    if (page.length !== 50) throw new Error(`newest page has ${page.length} messages`);
    const before = times[Math.floor(Math.random() * (times.length - 100)) + 100]!;
    t = performance.now();
    const back = await channel.getHistory(50, before);
    paged.record(performance.now() - t);
    if (back.length !== 50 || back[0]!.created_at >= before) throw new Error("a page back is wrong");
  }
  client.disconnect();
  return { fillSeconds, newest, paged };
}

/**
 * Persisted publishes as fast as they are acknowledged: 4 publishers, each
 * keeping up to 64 in flight (the server's per-session command limit),
 * over `topics` topics. Returns acknowledged messages per second.
 */
async function throughput(url: string, topics: number): Promise<number> {
  const run = Date.now().toString(36);
  const clients = Array.from({ length: THROUGHPUT_PUBLISHERS }, () => new RealtimeClient({ url }));
  await Promise.all(clients.map((c) => c.connect()));
  const perClient = THROUGHPUT_MESSAGES / THROUGHPUT_PUBLISHERS;
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (client, p) => {
      let next = 0;
      const worker = async () => {
        while (next < perClient) {
          const n = next++;
          await client.channel(`bench/durable-${run}-${(p * perClient + n) % topics}`).publish("m", { n, pad: "x".repeat(64) }, { persist: true });
        }
      };
      await Promise.all(Array.from({ length: 64 }, worker));
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  for (const c of clients) c.disconnect();
  return Math.round(THROUGHPUT_MESSAGES / seconds);
}

await buildServer();
const natsUrl = await startNats();
const prefix = `bench${Date.now().toString(36)}`;
const natsEnv = { CHORUS_ENGINE: "nats", NATS_URL: natsUrl, CHORUS_NATS_PREFIX: prefix };
// History benchmarks fill one topic beyond the default retention (10 000 per topic).
const chorus = (env: Record<string, string>) => startChorus({ CHORUS_RETENTION: "**=count:200000,age:1d", ...env });
const [memory, nodeA, nodeB] = await Promise.all([chorus({}), chorus(natsEnv), chorus(natsEnv)]);

const rows: Array<{ figure: string; memory: number; nats: number; unit: string }> = [];
const r2 = (n: number) => Math.round(n * 100) / 100;
for (const persist of [true, false]) {
  const kind = persist ? "persisted" : "ephemeral";
  process.stdout.write(`latency, ${kind} … `);
  const mem = await latency(memory.url, memory.url, persist);
  const crossNode = await latency(nodeB.url, nodeA.url, persist);
  console.log(`memory p50 ${r2(mem.percentile(50))} ms, nats across nodes p50 ${r2(crossNode.percentile(50))} ms`);
  for (const p of [50, 99]) rows.push({ figure: `publish→deliver p${p}, ${kind} (memory: one node; nats: across two nodes)`, memory: r2(mem.percentile(p)), nats: r2(crossNode.percentile(p)), unit: "ms" });
}
process.stdout.write(`history, ${HISTORY_MESSAGES} messages in one topic … `);
const memHistory = await history(memory.url);
const natsHistory = await history(nodeA.url);
console.log("done");
rows.push({ figure: `fill ${HISTORY_MESSAGES} persisted messages into one topic (windows of 1000)`, memory: r2(memHistory.fillSeconds), nats: r2(natsHistory.fillSeconds), unit: "s" });
for (const p of [50, 99]) {
  rows.push({ figure: `getHistory(50), newest page, p${p}`, memory: r2(memHistory.newest.percentile(p)), nats: r2(natsHistory.newest.percentile(p)), unit: "ms" });
  rows.push({ figure: `getHistory(50, before), random point, p${p}`, memory: r2(memHistory.paged.percentile(p)), nats: r2(natsHistory.paged.percentile(p)), unit: "ms" });
}

process.stdout.write("persisted throughput by durability mode … ");
const fsynced = await chorus({ CHORUS_FSYNC: "always" });
const durability: Array<{ figure: string; never: number; always: number; nats: number }> = [];
for (const topics of [1, 100]) {
  durability.push({
    figure: `persisted publishes acknowledged per second, ${THROUGHPUT_PUBLISHERS} publishers × 64 in flight, ${topics} topic${topics > 1 ? "s" : ""}`,
    never: await throughput(memory.url, topics),
    always: await throughput(fsynced.url, topics),
    nats: await throughput(nodeA.url, topics),
  });
}
console.log("done");

const date = new Date().toISOString();
const durabilityTable = [
  "| figure | memory, CHORUS_FSYNC=never (default) | memory, CHORUS_FSYNC=always | NATS (R1, file) |",
  "|---|---:|---:|---:|",
  ...durability.map((d) => `| ${d.figure} | ${d.never} msg/s | ${d.always} msg/s (${(d.always / d.never).toFixed(2)}×) | ${d.nats} msg/s (${(d.nats / d.never).toFixed(2)}×) |`),
].join("\n");
const table = [
  "| figure | memory engine | NATS engine | NATS / memory |",
  "|---|---:|---:|---:|",
  ...rows.map((r) => `| ${r.figure} | ${r.memory} ${r.unit} | ${r.nats} ${r.unit} | ${(r.nats / r.memory).toFixed(2)}× |`),
].join("\n");
console.log(`\n${table}\n\n${durabilityTable}\n`);
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "?"}`;
const nsVersion = natsVersion();
const md = [
  `# Chorus engines benchmark (${quick ? "quick" : "full"}), ${date.slice(0, 10)}`,
  "",
  `Commit ${currentCommit(ROOT)}. Machine: ${machine}; ${nsVersion} (private, JetStream file storage, R1), everything on loopback.`,
  `Latency: ${LATENCY_MESSAGES} messages at ${LATENCY_RATE}/s, clients in the benchmark process; memory: publisher and subscriber on one node; NATS: publisher on node B, subscriber on node A.`,
  `History: one topic filled with ${HISTORY_MESSAGES} messages, then ${HISTORY_QUERIES} newest pages and ${HISTORY_QUERIES} pages back from random times, timed at the client (round trip included).`,
  "",
  table,
  "",
  `Durability modes: ${THROUGHPUT_MESSAGES} persisted messages per figure; the bracket is the mode's figure divided by the default's (never).`,
  "",
  durabilityTable,
  "",
  `Reproduce: \`npm run bench:engines${quick ? " -- --quick" : ""}\`.`,
  "",
].join("\n");
const dir = join(ROOT, "bench/results");
mkdirSync(dir, { recursive: true });
const stamp = `${date.slice(0, 10)}-engines-${quick ? "quick" : "full"}`;
writeFileSync(join(dir, `${stamp}.json`), JSON.stringify({ date, quick, commit: currentCommit(ROOT), machine, nats: nsVersion, rows, durability }, null, 2) + "\n");
writeFileSync(join(dir, `${stamp}.md`), md);
console.log(`results: bench/results/${stamp}.md`);
process.exit(0);

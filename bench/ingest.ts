// The ingest benchmark, run by `npm run bench` (or alone with
// `npm run bench -- --only=ingest`): one back end emitting into a topic as
// fast as the server accepts, with 1, 4 and 16 emits in flight and in a
// loop that does not await; events a second, and server and client CPU
// per event. The peer, in the same run, is a Socket.IO client emitting
// with acknowledgements to a handler that broadcasts to a room.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { RealtimeClient as BrowserClient } from "../clients/src/browser.js";
import { RealtimeClient as NodeClient } from "../clients/src/node.js";
import { createServerSdk } from "../clients/src/server-sdk.js";
import { publisher } from "./load/adapters.js";
import { startChorus, startSocketIo } from "./load/processes.js";

export interface IngestRow {
  figure: string;
  chorus: number;
  socketio: number;
  unit: string;
}

const TOPIC = "feed/ingest";
const LEVELS = [1, 4, 16] as const;

const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
};

interface Run {
  perSecond: number;
  serverUs: number;
  clientUs: number;
}

/** Emits for `ms` with `inFlight` at a time (0: a loop that never awaits, `count` events). */
async function drive(pid: number, emit: (n: number) => Promise<unknown>, inFlight: number, ms: number, count: number): Promise<Run> {
  const server0 = cpuMs(pid);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  let sent = 0;
  if (inFlight === 0) {
    await Promise.allSettled(Array.from({ length: count }, (_, n) => emit(n)));
    sent = count;
  } else {
    const until = t0 + ms;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (performance.now() < until) await emit(sent++);
      }),
    );
  }
  const seconds = (performance.now() - t0) / 1000;
  const client = process.cpuUsage(client0);
  return { perSecond: Math.round(sent / seconds), serverUs: Math.round(((cpuMs(pid) - server0) * 1000) / sent), clientUs: Math.round((client.user + client.system) / sent) };
}

/** Every level; `loop` adds the loop that does not await (not for a browser client: each call would be a request at once). */
async function runAll(pid: number, emit: (n: number) => Promise<unknown>, quick: boolean, loop = true): Promise<Map<number, Run>> {
  const ms = quick ? 2000 : 5000;
  const runs = new Map<number, Run>();
  await drive(pid, emit, 4, 500, 0); // warm-up
  for (const level of LEVELS) runs.set(level, await drive(pid, emit, level, ms, 0));
  if (loop) runs.set(0, await drive(pid, emit, 0, 0, quick ? 20_000 : 50_000));
  return runs;
}

export async function ingestBench(quick: boolean): Promise<{ rows: IngestRow[]; publishRows: IngestRow[]; notes: string[] }> {
  const data = { text: "x".repeat(64) };
  const node = await startChorus({ CHORUS_MAX_EMIT_RATE: "0", CHORUS_MAX_PUBLISH_RATE: "0" });
  let chorus: Map<number, Run>;
  let sessions: Map<number, Run>;
  let browser: Map<number, Run>;
  try {
    const sdk = createServerSdk({ url: node.url, onError: () => {} });
    chorus = await runAll(node.child.pid!, (n) => sdk.socket.emit("m", { n, ...data }, TOPIC), quick);
    sdk.close();
    // ingest-publish: a user client publishing on its session (the bidi stream), and a browser's (unary Publish calls).
    const client = new NodeClient({ url: node.url, token: "publisher" });
    const channel = client.channel("feed/publish");
    sessions = await runAll(node.child.pid!, (n) => channel.publish("m", { n, ...data }), quick);
    client.disconnect();
    const tab = new BrowserClient({ url: node.url, token: "tab" });
    const tabChannel = tab.channel("feed/publish");
    browser = await runAll(node.child.pid!, (n) => tabChannel.publish("m", { n, ...data }), quick, false);
    tab.disconnect();
  } finally {
    node.child.kill("SIGKILL");
  }
  const io = await startSocketIo();
  let socketio: Map<number, Run>;
  try {
    const pub = await publisher("socketio", io.url);
    socketio = await runAll(io.child.pid!, (n) => pub.publish(TOPIC, JSON.stringify({ n, ...data })), quick);
    pub.close();
  } finally {
    io.child.kill("SIGKILL");
  }
  const rows: IngestRow[] = [];
  for (const level of [...LEVELS, 0]) {
    const c = chorus.get(level)!;
    const s = socketio.get(level)!;
    const how = level === 0 ? "a loop that does not await" : `${level} in flight`;
    rows.push({ figure: `one back end, ${how}: events accepted a second`, chorus: c.perSecond, socketio: s.perSecond, unit: "/s" });
    rows.push({ figure: `${how}: server CPU per event`, chorus: c.serverUs, socketio: s.serverUs, unit: "µs" });
    rows.push({ figure: `${how}: client CPU per event`, chorus: c.clientUs, socketio: s.clientUs, unit: "µs" });
  }
  const publishRows: IngestRow[] = [];
  for (const level of [...LEVELS, 0]) {
    const s = socketio.get(level)!;
    const how = level === 0 ? "a loop that does not await" : `${level} in flight`;
    for (const [who, runs] of [["session (bidi, Node)", sessions], ["browser (unary Publish over HTTP/1.1)", browser]] as const) {
      const c = runs.get(level);
      if (!c) continue;
      publishRows.push({ figure: `${who}, ${how}: publishes a second`, chorus: c.perSecond, socketio: s.perSecond, unit: "/s" });
      publishRows.push({ figure: `${who}, ${how}: server CPU per publish`, chorus: c.serverUs, socketio: s.serverUs, unit: "µs" });
      publishRows.push({ figure: `${who}, ${how}: client CPU per publish`, chorus: c.clientUs, socketio: s.clientUs, unit: "µs" });
    }
  }
  return {
    rows,
    publishRows,
    notes: [
      `Chorus: \`sdk.socket.emit\` (batches of the emits made in a turn, written as they are made into one long-lived EmitSession stream and answered in order); Socket.IO: \`socket.emitWithAck\` to a handler that broadcasts to the room. Nobody subscribes: this is the cost of getting events in. 64-byte payloads; ${quick ? 2 : 5} s per level.`,
      "ingest-publish: a user client's `channel.publish` awaited the same way, on the bidi session (Node) and as a browser sends it (Listen session, each publish a unary call over HTTP/1.1); the peer is the same Socket.IO client as above.",
    ],
  };
}

export function ingestTable(result: { rows: IngestRow[]; publishRows?: IngestRow[]; notes: string[] }): string {
  const lines = (rows: IngestRow[]) => ["| figure | Chorus | Socket.IO |", "|---|---:|---:|", ...rows.map((r) => `| ${r.figure} | ${r.chorus} ${r.unit} (${(r.chorus / r.socketio).toFixed(2)}×) | ${r.socketio} ${r.unit} |`)];
  return [
    "Ingest: one back end emitting into a topic as fast as the server accepts (ingest-emit), then one user client publishing (ingest-publish). The bracket is Chorus' figure divided by Socket.IO's.",
    "",
    ...result.notes.map((n) => `- ${n}`),
    "",
    ...lines(result.rows),
    ...(result.publishRows ? ["", ...lines(result.publishRows)] : []),
  ].join("\n");
}

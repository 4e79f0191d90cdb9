// The client's per-message cost, run by `npm run bench` (or alone with
// `npm run bench -- --only=decode`): how many payloads a second one Node
// client decodes and hands to a listener, on one core, in-process (no
// socket: what the client does with bytes once they have arrived). The
// bytes are what a server sends: ConnectResponse messages of 16 payload
// frames each (a flush), persisted chat messages of ~60 bytes of JSON. The
// peer, in the same run, is Socket.IO's client side doing the same work for
// the same messages: engine.io-parser's packet decode, socket.io-parser's
// decode, and its emitter calling the listener. A third column is the
// client as it was before it decoded payloads by hand: protobuf-es's
// generic decoder, a conversion per payload, and one await per frame.
// Each run is a process of its own (bench/decode-child.ts): in one process
// the runs before weigh on the next (their garbage, the strings JSON.parse
// interned, the JIT's feedback from another decoder), by 10-20 % here.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as engineParser from "engine.io-parser";
import * as socketParser from "socket.io-parser";
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { PayloadType } from "../gen/chorus/v1/payload_pb.js";
import { ConnectResponseSchema } from "../gen/chorus/v1/realtime_pb.js";
import { RealtimeClient } from "../clients/src/client.js";
import { decodeFrames, type InboundFrame } from "../clients/src/frames.js";
import type { CommandCase, SessionConnection, SessionTransport } from "../clients/src/session.js";

export interface DecodeRow {
  figure: string;
  chorus: number;
  /** The same client with the decoding it had before (protobuf-es, a frame per await). */
  before: number;
  socketio: number;
  unit: string;
}

const TOPIC = "chat/decode";
const PER_BODY = 16;

const message = (n: number) => ({ id: `m-${n}`, user: "ada", text: `hello number ${n} from the benchmark`, at: 1_764_000_000_000 + n });

/** The server's bytes for `count` payloads, PER_BODY to a message. */
export function chorusBodies(count: number): Uint8Array[] {
  const bodies: Uint8Array[] = [];
  for (let n = 0; n < count; n += PER_BODY) {
    const frames = Array.from({ length: Math.min(PER_BODY, count - n) }, (_, k) => ({
      kind: {
        case: "payload" as const,
        value: {
          type: PayloadType.EVENT,
          topic: TOPIC,
          event: "message",
          data: JSON.stringify(message(n + k)),
          userId: "ada",
          timestamp: BigInt(1_764_000_000_000 + n + k),
          id: `01J${String(n + k).padStart(23, "0")}`,
          seq: BigInt(n + k + 1),
          epoch: "e1",
          connectionId: "c-ada",
        },
      },
    }));
    const bytes = toBinary(ConnectResponseSchema, create(ConnectResponseSchema, { frames }));
    bodies.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)); // what the HTTP/2 stream hands the client

  }
  return bodies;
}

/** A session that is already there: a welcome, then the frames decoded from `bodies`, a body at a time as the Node session yields them. */
class ReplayTransport implements SessionTransport {
  constructor(
    private readonly bodies: Uint8Array[],
    private readonly decode: (body: Uint8Array) => InboundFrame[],
    private readonly framePerAwait: boolean,
  ) {}

  open(): SessionConnection {
    const { bodies, decode, framePerAwait } = this;
    let release!: () => void;
    const subscribed = new Promise<void>((resolve) => (release = resolve));
    return {
      frames: (async function* (): AsyncGenerator<InboundFrame[]> {
        yield [{ kind: { case: "welcome", value: { sessionId: "s", connectionId: "c", userId: "bench", nodeId: "n", heartbeatIntervalMs: 0, maxPayloadBytes: 65536 } } } as unknown as InboundFrame];
        await subscribed;
        for (const body of bodies) {
          if (framePerAwait) for (const frame of decode(body)) yield [frame];
          else yield decode(body);
        }
      })(),
      command: <K extends CommandCase>(kind: K) => {
        if (kind === "subscribe") release();
        return Promise.resolve({ joinData: "" } as never);
      },
      close: () => {},
    };
  }

  dispose(): void {}
  reset(): void {}
}

/** How the client read a server message before: every frame through protobuf-es. */
const decodeBefore = (body: Uint8Array): InboundFrame[] => fromBinary(ConnectResponseSchema, body).frames;

/** `before`: decode as the client did before (see decodeBefore), for a figure of the change in the same run. */
export async function chorusRun(bodies: Uint8Array[], count: number, before = false): Promise<{ perSecond: number; cpuUs: number }> {
  const transport = before ? new ReplayTransport(bodies, decodeBefore, true) : new ReplayTransport(bodies, decodeFrames, false);
  const client = new RealtimeClient({ url: "http://bench.invalid" }, transport);
  let received = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  client
    .channel(TOPIC)
    .on("message", ({ data }) => {
      if ((data as { text: string }).text.length > 0 && ++received === count) done();
    })
    .subscribe();
  await finished;
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  client.disconnect();
  return { perSecond: (count / ms) * 1000, cpuUs: ((cpu.user + cpu.system) / count) };
}

/** What socket.io-client receives for the same messages: engine.io packets, one per message. */
function socketIoPackets(count: number): string[] {
  const encoder = new socketParser.Encoder();
  const packets: string[] = [];
  for (let n = 0; n < count; n++) {
    const [encoded] = encoder.encode({ type: socketParser.PacketType.EVENT, nsp: "/", data: ["message", message(n)] });
    engineParser.encodePacket({ type: "message", data: encoded as string }, false, (wire) => packets.push(wire as string));
  }
  return packets;
}

async function socketIoRun(packets: string[]): Promise<{ perSecond: number; cpuUs: number }> {
  const listeners = new Map<string, (data: unknown) => void>();
  let received = 0;
  listeners.set("message", (data) => {
    if ((data as { text: string }).text.length > 0) received++;
  });
  const decoder = new socketParser.Decoder();
  decoder.on("decoded", (packet: socketParser.Packet) => {
    const [event, data] = packet.data as [string, unknown];
    listeners.get(event)?.(data);
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < packets.length; i++) {
    const packet = engineParser.decodePacket(packets[i]!);
    decoder.add(packet.data as string);
    if ((i & 1023) === 0) await new Promise((r) => setImmediate(r)); // a socket's reads arrive over many turns
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (received !== packets.length) throw new Error(`socket.io peer received ${received} of ${packets.length}`);
  return { perSecond: (packets.length / ms) * 1000, cpuUs: (cpu.user + cpu.system) / packets.length };
}

export type Contestant = "chorus" | "before" | "socketio";

/** One contestant, in this process: a warm-up (the JIT), then the best of three runs of `count` payloads. */
export async function runContestant(which: Contestant, count: number): Promise<{ perSecond: number; cpuUs: number }> {
  const runs: Array<{ perSecond: number; cpuUs: number }> = [];
  if (which === "socketio") {
    const packets = socketIoPackets(count);
    await socketIoRun(packets.slice(0, 16_000));
    for (let i = 0; i < 3; i++) runs.push(await socketIoRun(packets));
  } else {
    const bodies = chorusBodies(count);
    await chorusRun(bodies.slice(0, 1000), Math.min(count, 1000 * PER_BODY), which === "before");
    for (let i = 0; i < 3; i++) runs.push(await chorusRun(bodies, count, which === "before"));
  }
  return best(runs);
}

const best = (runs: Array<{ perSecond: number; cpuUs: number }>) => runs.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));

/** A contestant's run in a fresh process (see the file's head). */
function inChild(which: Contestant, count: number): { perSecond: number; cpuUs: number } {
  const out = execFileSync(process.execPath, ["--import", "tsx", new URL("./decode-child.ts", import.meta.url).pathname, which, String(count)], { encoding: "utf8", timeout: 120_000 });
  return JSON.parse(out.trim().split("\n").pop()!) as { perSecond: number; cpuUs: number };
}

export async function decodeBench(quick: boolean): Promise<DecodeRow[]> {
  const count = quick ? 100_000 : 400_000;
  // Two processes each, taken in turns, the best run of all: this measures code, not the machine's noise.
  const runs: Record<Contestant, Array<{ perSecond: number; cpuUs: number }>> = { chorus: [], before: [], socketio: [] };
  for (let i = 0; i < 2; i++) for (const which of ["chorus", "before", "socketio"] as const) runs[which].push(inChild(which, count));
  const c = best(runs.chorus);
  const b = best(runs.before);
  const s = best(runs.socketio);
  return [
    { figure: "payloads decoded and dispatched per second (one core)", chorus: c.perSecond, before: b.perSecond, socketio: s.perSecond, unit: "/s" },
    { figure: "CPU per payload", chorus: c.cpuUs, before: b.cpuUs, socketio: s.cpuUs, unit: "µs" },
  ];
}

export function decodeTable(rows: DecodeRow[]): string {
  const format = (v: number, unit: string) => (unit === "/s" ? Math.round(v).toLocaleString("en-US") : v.toFixed(2));
  return [
    "### Client decode (one Node client, in-process, each run in a fresh process; 16 payloads per server message)",
    "",
    "| figure | Chorus | Chorus before (protobuf-es, a frame per await) | Socket.IO | Chorus ÷ before | Chorus ÷ Socket.IO |",
    "|---|---:|---:|---:|---:|---:|",
    ...rows.map(
      (r) =>
        `| ${r.figure} | ${format(r.chorus, r.unit)} ${r.unit} | ${format(r.before, r.unit)} ${r.unit} | ${format(r.socketio, r.unit)} ${r.unit} | ${(r.chorus / r.before).toFixed(2)}× | ${(r.chorus / r.socketio).toFixed(2)}× |`,
    ),
  ].join("\n");
}

// A load-generator process for the presence benchmark: opens its share of
// a room's members (bidi sessions that subscribe to the room and track a
// state), drives updates or messages from them when told, and reports how
// long what it sent took to reach every member it holds. Run by
// bench/presence.ts, never inside a server process.
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { performance } from "node:perf_hooks";
import { ConnectRequestSchema, ServerFrameSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { eachServerFrame, framer, payloadData } from "./adapters.js";
import { leanConnect, type LeanConnection } from "./h2-client.js";
import { Histogram } from "./histogram.js";

export interface PresenceWorkerConfig {
  url: string;
  room: string;
  members: number;
  /** Index of this worker's first member in the room. */
  offset: number;
}

/** p: presence updates (track), m: messages (ephemeral publish) of the same size on the same topic. */
export type Kind = "p" | "m";

export type ToPresenceWorker =
  | { cmd: "drive"; kind: Kind; perSecond: number; count: number; firstN: number }
  | { cmd: "extra"; rooms: number }
  | { cmd: "report" }
  | { cmd: "reset" }
  | { cmd: "exit" };

export interface PresenceWorkerReport {
  /** Per kind: every delivery's latency. */
  latency: Record<Kind, ReturnType<Histogram["toJSON"]>>;
  /** Per kind: for each update or message n, its latest delivery here (ms after it was sent). */
  lastByN: Record<Kind, Record<number, number>>;
  received: Record<Kind, number>;
  /** Commands the server refused (with why). */
  refused: string[];
}

const config = JSON.parse(process.argv[2]!) as PresenceWorkerConfig;
const now = () => performance.timeOrigin + performance.now();
const PAD = "x".repeat(64);

let latency = { p: new Histogram(), m: new Histogram() };
let lastByN: PresenceWorkerReport["lastByN"] = { p: {}, m: {} };
let received = { p: 0, m: 0 };
const refused: string[] = [];

interface Member {
  index: number;
  connection: LeanConnection;
  send(command: MessageInitShape<typeof ConnectRequestSchema>): void;
  /** Resolvers of commands waiting for their reply, by request id. */
  waiting: Map<bigint, () => void>;
  nextId: bigint;
}

function envelope(bytes: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([head, bytes]);
}

/** Sends a command and resolves on its reply (a refusal is recorded, not thrown). */
function ask(member: Member, command: MessageInitShape<typeof ConnectRequestSchema>["command"]): Promise<void> {
  const requestId = member.nextId++;
  return new Promise((resolve) => {
    member.waiting.set(requestId, resolve);
    member.send({ requestId, command });
  });
}

function onDelivery(data: string): void {
  // Joins and syncs carry no send time: only what this benchmark sent is timed.
  if (!data.includes('"t":')) return;
  const { n, t, k } = JSON.parse(data) as { n: number; t: number; k: Kind };
  const ms = now() - t;
  latency[k].record(ms);
  received[k]++;
  if (!(lastByN[k][n]! >= ms)) lastByN[k][n] = ms;
}

async function open(index: number): Promise<Member> {
  const connection = await leanConnect(config.url);
  const member: Member = { index, connection, send: () => {}, waiting: new Map(), nextId: 1n };
  const stream = connection.request(
    "POST",
    "/chorus.v1.RealtimeService/Connect",
    // Development mode: the token is the user id (one user per member).
    { "content-type": "application/connect+proto", "connect-protocol-version": "1", authorization: `Bearer member-${index}` },
    framer(5, (flags, body) => {
      if (flags !== 0) return;
      eachServerFrame(body, (kind, start, end) => {
        if (kind === 0x12) onDelivery(payloadData(body, start, end));
        else if (kind === 0x1a) {
          const frame = fromBinary(ServerFrameSchema, body.subarray(start, end));
          if (frame.kind.case === "reply") {
            const reply = frame.kind.value;
            if (reply.result.case === "error") refused.push(reply.result.value.message);
            member.waiting.get(reply.requestId)?.();
            member.waiting.delete(reply.requestId);
          }
        } else if (kind === 0x22) member.send({ command: { case: "ping", value: {} } });
      });
    }),
  );
  member.send = (value) => stream.write(envelope(toBinary(ConnectRequestSchema, create(ConnectRequestSchema, value))));
  await ask(member, { case: "subscribe", value: { topic: config.room } });
  await ask(member, { case: "track", value: { topic: config.room, state: JSON.stringify({ i: index, pad: PAD }) } });
  return member;
}

const members: Member[] = [];
const timers: NodeJS.Timeout[] = [];

async function openAll(): Promise<void> {
  const BATCH = 50;
  for (let start = 0; start < config.members; start += BATCH) {
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, config.members - start) }, (_, k) => open(config.offset + start + k)));
    members.push(...batch);
  }
}

/** Sends `count` updates (or messages) at `perSecond`, each from the next member in turn (so no member exceeds its rate). */
function drive(kind: Kind, perSecond: number, count: number, firstN: number): Promise<void> {
  return new Promise((resolve) => {
    let sent = 0;
    const started = performance.now();
    const tick = () => {
      const due = Math.min(count, Math.floor(((performance.now() - started) * perSecond) / 1000) + 1);
      while (sent < due) {
        const n = firstN + sent;
        const member = members[sent % members.length]!;
        const data = JSON.stringify({ i: member.index, n, t: now(), k: kind, pad: PAD });
        if (kind === "p") member.send({ requestId: member.nextId++, command: { case: "track", value: { topic: config.room, state: data } } });
        else member.send({ command: { case: "publish", value: { topic: config.room, event: "m", data } } });
        sent++;
      }
      if (sent >= count) return resolve();
      timers.push(setTimeout(tick, Math.max(1, 1000 / perSecond / 2)));
    };
    tick();
  });
}

process.on("message", (message: ToPresenceWorker) => {
  switch (message.cmd) {
    case "drive":
      void drive(message.kind, message.perSecond, message.count, message.firstN).then(() => process.send!({ done: true }));
      break;
    case "extra":
      // Every member also tracks in `rooms` more rooms that nobody watches: memory per member.
      void Promise.all(members.map(async (m) => { for (let r = 0; r < message.rooms; r++) await ask(m, { case: "track", value: { topic: `${config.room}-extra-${r}`, state: JSON.stringify({ i: m.index, pad: PAD }) } }); })).then(() =>
        process.send!({ done: true }),
      );
      break;
    case "reset":
      latency = { p: new Histogram(), m: new Histogram() };
      lastByN = { p: {}, m: {} };
      received = { p: 0, m: 0 };
      process.send!({ done: true });
      break;
    case "report":
      process.send!({ report: { latency: { p: latency.p.toJSON(), m: latency.m.toJSON() }, lastByN, received, refused } satisfies PresenceWorkerReport });
      break;
    case "exit":
      for (const t of timers) clearTimeout(t);
      for (const m of members) m.connection.close();
      setTimeout(() => process.exit(0), 100).unref();
      break;
  }
});

openAll().then(
  () => process.send!({ ready: members.length }),
  (error: unknown) => {
    process.send!({ error: String((error as Error)?.stack ?? error) });
    process.exit(1);
  },
);

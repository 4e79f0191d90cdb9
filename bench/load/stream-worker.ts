// A load-generator process for the token stream benchmark: opens its share
// of viewers of one topic and records, for the tokens it reads, how long
// after their write they arrived. Tokens are `<send time>|`: a Chorus
// `stream:chunk` carries one or several of them (coalesced), a Socket.IO
// message exactly one. Run by bench/streams.ts, never in a server process.
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectRequestSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { eachServerFrame, framer, payloadData, SAMPLE_EVERY } from "./adapters.js";
import { leanConnect } from "./h2-client.js";
import { Histogram } from "./histogram.js";

export interface StreamWorkerConfig {
  kind: "chorus" | "socketio";
  url: string;
  viewers: number;
  topic: string;
}

export type ToStreamWorker = { cmd: "measure"; on: boolean } | { cmd: "report" } | { cmd: "exit" };

export interface StreamWorkerReport {
  /** Token latencies (ms), over the sampled deliveries. */
  histogram: ReturnType<Histogram["toJSON"]>;
  /** Deliveries (frames or messages) received while measuring. */
  deliveries: number;
}

const config = JSON.parse(process.argv[2]!) as StreamWorkerConfig;
const now = () => performance.timeOrigin + performance.now();
let histogram = new Histogram();
let deliveries = 0;
let measuring = false;
let seen = 0;

/** One delivery: counted; one in SAMPLE_EVERY has each of its tokens timed. */
function delivered(tokens: () => string): void {
  if (!measuring) return;
  deliveries++;
  if (++seen % SAMPLE_EVERY !== 0) return;
  const at = now();
  for (const token of tokens().split("|")) if (token) histogram.record(at - Number(token));
}

async function chorusViewer(): Promise<() => void> {
  const connection = await leanConnect(config.url);
  const envelope = (bytes: Uint8Array) => {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(bytes.length, 1);
    return Buffer.concat([head, bytes]);
  };
  let ready: () => void = () => {};
  const stream = connection.request(
    "POST",
    "/chorus.v1.RealtimeService/Connect",
    { "content-type": "application/connect+proto", "connect-protocol-version": "1" },
    framer(5, (flags, body) => {
      if (flags !== 0) return;
      eachServerFrame(body, (kind, start, end) => {
        if (kind === 0x12) {
          delivered(() => {
            const data = JSON.parse(payloadData(body, start, end)) as { index?: number; text?: string };
            // Only chunks: the start has no text, the end all of it.
            return data.index === undefined ? "" : (data.text ?? "");
          });
        } else if (kind === 0x1a) ready();
        else if (kind === 0x22) stream.write(envelope(toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { command: { case: "ping", value: {} } }))));
      });
    }),
  );
  await new Promise<void>((resolve) => {
    ready = resolve;
    stream.write(envelope(toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId: 1n, command: { case: "subscribe", value: { topic: config.topic } } }))));
  });
  return () => connection.close();
}

async function socketioViewer(): Promise<() => void> {
  const ws = new WebSocket(`${config.url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`);
  await new Promise<void>((resolve, reject) => {
    ws.once("error", reject);
    ws.on("message", (data: Buffer) => {
      if (data[0] === 0x34 && data[1] === 0x32) delivered(() => (JSON.parse(data.toString("utf8", 2)) as [string, string])[1]);
      else if (data[0] === 0x30) ws.send("40");
      else if (data[0] === 0x34 && data[1] === 0x30) ws.send(`421${JSON.stringify(["sub", config.topic])}`);
      else if (data[0] === 0x34 && data[1] === 0x33) resolve();
      else if (data[0] === 0x32) ws.send("3");
    });
  });
  return () => ws.close();
}

const closers: Array<() => void> = [];
for (let i = 0; i < config.viewers; i += 50) {
  const batch = Math.min(50, config.viewers - i);
  closers.push(...(await Promise.all(Array.from({ length: batch }, () => (config.kind === "chorus" ? chorusViewer() : socketioViewer())))));
}
process.send!({ ready: true });

process.on("message", (message: ToStreamWorker) => {
  switch (message.cmd) {
    case "measure":
      measuring = message.on;
      if (message.on) {
        histogram = new Histogram();
        deliveries = 0;
      }
      break;
    case "report":
      process.send!({ report: { histogram: histogram.toJSON(), deliveries } satisfies StreamWorkerReport });
      break;
    case "exit":
      for (const close of closers) close();
      setTimeout(() => process.exit(0), 100).unref();
      break;
  }
});

// A client that sends commands and never reads the replies: the node reads
// at most its in-flight limit of commands ahead, the replies count against
// the session's outbox bound, and once that is full the client is cut off
// (RST_STREAM ENHANCE_YOUR_CALM, read by gRPC clients as
// RESOURCE_EXHAUSTED). The node's memory stays bounded throughout, and
// other clients are served.
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { expect, it } from "vitest";
import { ConnectRequestSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { NodeClient } from "../helpers/clients.js";
import { closeRawConnections, ERROR, FLAG, FRAME, RawConnection, requestFields } from "../helpers/h2-raw.js";
import { encodeHeaders } from "../../server/src/transport/h2/hpack.js";
import { eventually, rssMB, serverForSuite, sleep } from "../helpers/server.js";

const server = serverForSuite({ CHORUS_MAX_PUBLISH_RATE: "0" });

type Command = MessageInitShape<typeof ConnectRequestSchema>["command"];

function envelope(requestId: bigint, command: Command): Buffer {
  const body = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId, command }));
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  Buffer.from(body).copy(out, 5);
  return out;
}

/**
 * Opens a bidi session on stream 1 and sends `command` over and over for
 * `ms`, within the send windows the server grants, reading nothing but
 * its window updates (and never granting it any window back).
 */
async function flood(command: (n: bigint) => Command, ms: number): Promise<RawConnection> {
  const c = await RawConnection.connect(server.port);
  c.send(FRAME.HEADERS, FLAG.END_HEADERS, 1, encodeHeaders(requestFields("/chorus.v1.RealtimeService/Connect", "POST", [["content-type", "application/connect+proto"]])));
  let window = 65_535;
  let credited = 0;
  const deadline = Date.now() + ms;
  for (let n = 1n; Date.now() < deadline && !c.closed && !c.frames.some((f) => f.type === FRAME.RST_STREAM); n++) {
    const bytes = envelope(n, command(n));
    const granted = c.frames.filter((f) => f.type === FRAME.WINDOW_UPDATE && f.stream === 1).reduce((sum, f) => sum + f.payload.readUInt32BE(0), 0);
    window += granted - credited;
    credited = granted;
    if (window < bytes.length) {
      await sleep(5);
      continue;
    }
    window -= bytes.length;
    c.send(FRAME.DATA, 0, 1, bytes);
    if (n % 64n === 0n) await sleep(0);
  }
  return c;
}

it("cuts off a client that sends GetHistory and never reads the replies; memory stays bounded", { timeout: 60_000 }, async () => {
  const sdk = createServerSdk({ url: server.url });
  const blob = "x".repeat(60_000);
  for (let i = 0; i < 20; i++) await sdk.socket.emit("m", { i, blob }, "chat/heavy", { persist: true });
  sdk.close();
  const before = rssMB(server.pid);
  let peak = before;
  const watch = setInterval(() => (peak = Math.max(peak, rssMB(server.pid))), 50);
  const started = Date.now();
  const c = await flood(() => ({ case: "getHistory", value: { topic: "chat/heavy", limit: 20 } }), 20_000);
  try {
    const reset = await c.next((f) => f.type === FRAME.RST_STREAM && f.stream === 1, "the session cut off", 20_000);
    expect(reset.payload.readUInt32BE(0)).toBe(ERROR.ENHANCE_YOUR_CALM);
    const elapsed = Date.now() - started;
    await sleep(300);
    clearInterval(watch);
    console.log(`GetHistory flood: cut off after ${elapsed} ms; server RSS ${before.toFixed(1)} MB before, peak ${peak.toFixed(1)} MB, ${rssMB(server.pid).toFixed(1)} MB after`);
    // Eight pages of about 1 MiB fill the 8 MiB outbox; everything else was never read.
    expect(peak - before).toBeLessThan(120);
  } finally {
    clearInterval(watch);
    closeRawConnections();
  }
});

it("cuts off a client that pipelines pings and subscribes without reading, while others keep being served", { timeout: 60_000 }, async () => {
  const bystander = new NodeClient({ url: server.url, token: "bystander" });
  const got: number[] = [];
  bystander.channel("chat/calm").on("m", ({ data }) => got.push(data)).subscribe();
  await bystander.channel("chat/calm").ready();
  const before = rssMB(server.pid);
  const pings = await flood((n): Command => (n % 2n ? { case: "ping", value: {} } : { case: "subscribe", value: { topic: `chat/s${n}` } }), 20_000);
  try {
    const reset = await pings.next((f) => f.type === FRAME.RST_STREAM && f.stream === 1, "the session cut off", 20_000);
    expect(reset.payload.readUInt32BE(0)).toBe(ERROR.ENHANCE_YOUR_CALM);
    for (let i = 0; i < 5; i++) await bystander.channel("chat/calm").publish("m", i);
    await eventually(() => got.length === 5, "the bystander's messages");
    console.log(`ping/subscribe flood: cut off; server RSS ${before.toFixed(1)} MB before, ${rssMB(server.pid).toFixed(1)} MB after`);
  } finally {
    bystander.disconnect();
    closeRawConnections();
  }
});

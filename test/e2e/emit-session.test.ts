// EmitSession: the long-lived stream the server SDK's emit travels on.
// Batches are answered one for one, in order, on the hand-framed path and
// on connect's generic one alike; a batch refused whole is answered with
// its error for each event and the stream goes on; a stream that fails
// fails only the batches it had not answered, and the next emit gets a new
// one; a back end that emitted and is done exits without close().
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { execFile } from "node:child_process";
import * as http2 from "node:http2";
import { afterAll, describe, expect, it } from "vitest";
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { EmitSessionRequestSchema, ServerService, type EmitSessionResponse } from "../../gen/chorus/v1/server_pb.js";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { NodeClient } from "../helpers/clients.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { codeOf, ROOT, serverForSuite } from "../helpers/server.js";

const server = serverForSuite({ CHORUS_API_KEYS: "session-key", CHORUS_MAX_EMIT_RATE: "0", CHORUS_MAX_EMIT_BATCH: "100" });
const headers = { authorization: "Bearer session-key" };

async function* batches(list: Array<MessageInitShape<typeof EmitSessionRequestSchema>>): AsyncIterable<MessageInitShape<typeof EmitSessionRequestSchema>> {
  for (const batch of list) yield batch;
}

const event = (topic: string, n: number) => ({ topic, event: "m", data: String(n), persist: true });

describe.each([
  { name: "Connect, binary (framed by hand)", transport: () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" }) },
  { name: "gRPC (framed by hand)", transport: () => createGrpcTransport({ baseUrl: server.url }) },
  { name: "Connect, JSON (connect's handler)", transport: () => createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: false }) },
])("EmitSession over $name", ({ name, transport }) => {
  it("answers each batch once, in order; a batch over the limit gets its error per event and the stream goes on", async () => {
    const topic = `feed/session-${name.length}-${name.charCodeAt(0)}`;
    const client = createClient(ServerService, transport());
    const sent = [
      { events: [event(topic, 1), event(topic, 2), { ...event(topic, 0), event: "" }] },
      { events: Array.from({ length: 101 }, (_, n) => event(topic, 100 + n)) },
      { events: [event(topic, 3)] },
    ];
    const answers: EmitSessionResponse[] = [];
    for await (const answer of client.emitSession(batches(sent), { headers })) answers.push(answer);
    expect(answers.map((a) => a.results.length)).toEqual([3, 101, 1]);
    const [first, over, last] = answers;
    expect(first!.results.map((r) => r.result.case)).toEqual(["emitted", "emitted", "error"]);
    expect(over!.results.every((r) => r.result.case === "error" && r.result.value.code === 8)).toBe(true); // RESOURCE_EXHAUSTED
    const seq = (r: (typeof answers)[number]["results"][number]) => (r.result.case === "emitted" ? Number(r.result.value.position!.seq) : -1);
    expect([seq(first!.results[0]!), seq(first!.results[1]!), seq(last!.results[0]!)]).toEqual([1, 2, 3]);
    const viewer = new NodeClient({ url: server.url, token: "reader" });
    expect((await viewer.channel(topic).getHistory(10)).map((m) => m.data).reverse()).toEqual([1, 2, 3]); // none of the refused batch (history is newest first)
    viewer.disconnect();
  });

  it("needs an API key", async () => {
    const client = createClient(ServerService, transport());
    const reading = (async () => {
      for await (const _ of client.emitSession(batches([{ events: [event("feed/nokey", 1)] }]))) void _;
    })();
    expect(await codeOf(reading)).toBe("Unauthenticated");
  });
});

it("ends a stream whose message is not protobuf with INVALID_ARGUMENT, after answering the batches before it", async () => {
  const session = http2.connect(server.url);
  const stream = session.request({ ":method": "POST", ":path": "/chorus.v1.ServerService/EmitSession", "content-type": "application/connect+proto", ...headers });
  const body = toBinary(EmitSessionRequestSchema, create(EmitSessionRequestSchema, { events: [event("feed/garbage", 1)] }));
  const envelope = (bytes: Uint8Array) => Buffer.concat([Buffer.from([0, 0, 0, 0, bytes.length]), bytes]);
  stream.write(envelope(body));
  stream.write(envelope(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])));
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  await new Promise((resolve) => stream.on("end", resolve));
  session.close();
  const all = Buffer.concat(chunks);
  expect(all[0]).toBe(0); // the first batch's answer
  const answerLength = all.readUInt32BE(1);
  const end = all.subarray(5 + answerLength);
  expect(end[0]).toBe(0x02); // Connect's end of stream, with the error
  expect(JSON.parse(end.subarray(5).toString())).toMatchObject({ error: { code: "invalid_argument" } });
});

describe("the server SDK on its emit stream", () => {
  let proxy: LoopbackProxy | undefined;
  afterAll(() => proxy?.close());

  it("a dropped connection fails only the emits it had not answered; the next emits go through, a retried id stored once", async () => {
    proxy = await LoopbackProxy.start(server.port);
    const sdk = createServerSdk({ url: proxy.url, apiKey: "session-key", onError: () => {} });
    const topic = "feed/dropped";
    await sdk.socket.emit("m", 0, topic, { persist: true, id: "before" });
    proxy.freezeAll(); // nothing more passes either way: these stay unanswered
    const waiting = Array.from({ length: 5 }, (_, n) => sdk.socket.emit("m", n + 1, topic, { persist: true, id: `held-${n}` }));
    await new Promise((r) => setTimeout(r, 100));
    proxy.dropFrozen();
    const settled = await Promise.allSettled(waiting);
    expect(settled.every((s) => s.status === "rejected")).toBe(true);
    expect(await codeOf(waiting[0]!)).toBe("Unavailable");
    // The back end retries with the same ids: each stored once, whatever reached the server before the drop.
    const retried = await Promise.all(Array.from({ length: 5 }, (_, n) => sdk.socket.emit("m", n + 1, topic, { persist: true, id: `held-${n}` })));
    expect(retried.map((r) => r.position!.seq)).toEqual([2, 3, 4, 5, 6]);
    const viewer = new NodeClient({ url: server.url, token: "reader" });
    expect((await viewer.channel(topic).getHistory(10)).map((m) => m.data).reverse()).toEqual([0, 1, 2, 3, 4, 5]); // history is newest first
    viewer.disconnect();
    sdk.close();
  });

  it("emits made in one turn that are together larger than the server reads as one message go in several batches, all stored in order", async () => {
    const sdk = createServerSdk({ url: server.url, apiKey: "session-key" });
    const topic = "feed/large-turn";
    const big = "x".repeat(40 * 1024);
    // 20 × 40 KiB in one turn: 800 KiB, four times what one message may hold.
    const emitted = await Promise.all(Array.from({ length: 20 }, (_, n) => sdk.socket.emit("m", { n, big }, topic, { persist: true })));
    expect(emitted.map((e) => e.position!.seq)).toEqual(Array.from({ length: 20 }, (_, n) => n + 1));
    sdk.close();
  });

  it("a back end that emitted and is done exits by itself, without close()", async () => {
    const script = `
      import { createServerSdk } from "./clients/src/server-sdk.ts";
      const sdk = createServerSdk({ url: ${JSON.stringify(server.url)}, apiKey: "session-key" });
      await Promise.all(Array.from({ length: 500 }, (_, n) => sdk.socket.emit("m", n, "feed/exit")));
      console.log("done");
    `;
    const started = Date.now();
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, timeout: 15_000 }, (error, out) => (error ? reject(error) : resolve(out))),
    );
    expect(stdout.trim()).toBe("done");
    expect(Date.now() - started).toBeLessThan(8_000);
  });
});

it("a back end that does not read its answers is held by flow control: batches stop being taken, then all are answered once it reads", async () => {
  const topic = "feed/unread";
  const session = http2.connect(server.url);
  const stream = session.request({ ":method": "POST", ":path": "/chorus.v1.ServerService/EmitSession", "content-type": "application/connect+proto", ...headers });
  stream.pause(); // answers are not read
  const batches = 20_000;
  const envelope = (bytes: Uint8Array) => Buffer.concat([Buffer.from([0, 0, 0, 0, bytes.length]), bytes]);
  for (let n = 0; n < batches; n++) stream.write(envelope(toBinary(EmitSessionRequestSchema, create(EmitSessionRequestSchema, { events: [event(topic, n)] }))));
  const viewer = new NodeClient({ url: server.url, token: "reader" });
  const stored = async () => (await viewer.channel(topic).getHistory(1))[0]?.seq ?? 0;
  await new Promise((r) => setTimeout(r, 1500));
  const held = await stored();
  await new Promise((r) => setTimeout(r, 500));
  expect(await stored()).toBe(held); // nothing more is taken while the answers wait
  expect(held).toBeLessThan(batches / 2); // bounded by the stream's window and the in-flight limit, not by what was sent
  // Reading again lets everything through, answered once each.
  let answers = 0;
  let pending = Buffer.alloc(0);
  stream.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      pending = pending.subarray(5 + pending.readUInt32BE(1));
      answers++;
    }
  });
  stream.resume();
  for (const deadline = Date.now() + 20_000; answers < batches && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
  expect(answers).toBe(batches);
  expect(await stored()).toBe(batches);
  stream.close();
  session.close();
  viewer.disconnect();
});

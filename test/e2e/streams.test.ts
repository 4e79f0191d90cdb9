// Token streams (EmitStream, sdk.socket.stream / pipe, channel.onStream /
// streams()): viewers from the start and late joiners reconstruct exactly
// the producer's text, history keeps the finished response once, and no
// stream is ever left open: a producer that goes away, is killed or falls
// silent ends it with an error for every viewer.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import type { StreamState } from "../../clients/src/streams.js";
import type { RealtimePayload } from "../../clients/src/types.js";
import { BrowserClient, NodeClient, transports } from "../helpers/clients.js";
import { natsEngineEnv, SHARED_NATS_URL, testEngines, uniquePrefix } from "../helpers/nats.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { codeOf, eventually, removeDir, serverForSuite, sleep, startServer, type ServerProcess } from "../helpers/server.js";

const engines = await testEngines("streams");
const IDLE_MS = 1500;
const ROOT = new URL("../..", import.meta.url).pathname;

/** Every state a channel's onStream reported, and the last one per stream. */
function watch(channel: { onStream(cb: (s: StreamState) => void): unknown }) {
  const last = new Map<string, StreamState>();
  let changes = 0;
  channel.onStream((s) => {
    last.set(s.id, s);
    changes++;
  });
  return { last, changes: () => changes };
}

const tokens = (n: number, tag = "") => Array.from({ length: n }, (_, i) => `${tag}tok${i} `);

describe.each(engines)("token streams on the $name engine", (engine) => {
  const server = serverForSuite({ ...engine.env(), CHORUS_STREAM_IDLE_MS: String(IDLE_MS), CHORUS_API_KEYS: "ai-key", CHORUS_MAX_PUBLISH_RATE: "0" });
  const sdk = () => createServerSdk({ url: server.url, apiKey: "ai-key", onError: () => {} });

  it("a viewer from the start and one joining midway both get exactly the text; history keeps the response once", async () => {
    const topic = "ai/answer";
    const early = new NodeClient({ url: server.url, token: "early" });
    const earlyStreams = watch(early.channel(topic));
    const raw: RealtimePayload[] = [];
    early.channel(topic).on("*", (p) => raw.push(p));
    await early.channel(topic).subscribe().ready();
    const producer = sdk();
    const parts = tokens(400);
    const writer = producer.socket.stream(topic, { event: "answer", meta: { model: "m1" } });
    for (const t of parts.slice(0, 200)) {
      writer.write(t);
      if (Math.random() < 0.1) await sleep(1);
    }
    await eventually(() => (earlyStreams.last.get(writer.id)?.chunks ?? 0) >= 200, "the first half at the early viewer");
    // Joins midway, over the browser transport: the text so far in one chunk, then the rest live.
    const late = new BrowserClient({ url: server.url, token: "late" });
    const lateStreams = watch(late.channel(topic));
    const lateChunks: RealtimePayload[] = [];
    late.channel(topic).on("stream:chunk", (p) => lateChunks.push(p));
    await late.channel(topic).subscribe().ready();
    for (const t of parts.slice(200)) {
      writer.write(t);
      if (Math.random() < 0.1) await sleep(1);
    }
    const result = await writer.end();
    expect(result).toMatchObject({ id: writer.id, chunks: 400, status: "done" });
    expect(result.position?.seq).toBeGreaterThan(0);
    const text = parts.join("");
    for (const viewer of [earlyStreams, lateStreams]) {
      await eventually(() => viewer.last.get(writer.id)?.done === true, "the end");
      expect(viewer.last.get(writer.id)).toMatchObject({ id: writer.id, event: "answer", meta: { model: "m1" }, text, chunks: 400, done: true, status: "done" });
    }
    // The late joiner's first chunk held everything before it joined.
    expect(lateChunks[0]!.data).toMatchObject({ index: 0 });
    expect(lateChunks[0]!.data.count).toBeGreaterThanOrEqual(200);
    // Live chunks are coalesced: fewer frames than tokens, and they add up to the text.
    const liveChunks = raw.filter((p) => p.event === "stream:chunk");
    expect(liveChunks.length).toBeLessThan(400);
    expect(liveChunks.map((p) => p.data.text).join("")).toBe(text);
    expect(raw.map((p) => p.event).filter((e) => e !== "stream:chunk")).toEqual(["stream:start", "stream:end"]);
    expect(raw.at(-1)).toMatchObject({ type: "stream", data: { id: writer.id, status: "done", text, chunks: 400 } });
    // History: the finished response, once.
    const history = await early.channel(topic).getHistory(10);
    expect(history.filter((m) => m.data.id === writer.id)).toEqual([expect.objectContaining({ event: "stream:end", data: expect.objectContaining({ text, status: "done", meta: { model: "m1" } }) })]);
    early.disconnect();
    late.disconnect();
    producer.close();
  });

  it("streams() gives each stream as an async iterable of its chunks; two concurrent streams never mix", async () => {
    const topic = "ai/pair";
    const viewer = new NodeClient({ url: server.url, token: "viewer" });
    await viewer.channel(topic).subscribe().ready();
    const read = (async () => {
      const texts: Record<string, string> = {};
      let seen = 0;
      for await (const stream of viewer.channel(topic).streams()) {
        void (async () => {
          let text = "";
          for await (const chunk of stream) text += chunk;
          texts[stream.meta.name] = text;
          expect(await stream.text()).toBe(text);
        })();
        if (++seen === 2) break;
      }
      await eventually(() => Object.keys(texts).length === 2, "both read to their end");
      return texts;
    })();
    const producer = sdk();
    const a = producer.socket.stream(topic, { meta: { name: "a" } });
    const b = producer.socket.stream(topic, { meta: { name: "b" } });
    const aParts = tokens(300, "A");
    const bParts = tokens(300, "B");
    for (let i = 0; i < 300; i++) {
      a.write(aParts[i]);
      b.write(bParts[i]);
      if (i % 50 === 0) await sleep(2);
    }
    await Promise.all([a.end(), b.end()]);
    expect(await read).toEqual({ a: aParts.join(""), b: bParts.join("") });
    viewer.disconnect();
    producer.close();
  });

  it("pipe() streams an async generator; one that throws midway ends the stream with its message", async () => {
    const topic = "ai/pipe";
    const viewer = new NodeClient({ url: server.url, token: "viewer" });
    const seen = watch(viewer.channel(topic));
    await viewer.channel(topic).subscribe().ready();
    const producer = sdk();
    async function* model(fail: boolean) {
      for (let i = 0; i < 20; i++) {
        yield i % 2 ? { text: `t${i} ` } : { choices: [{ delta: { content: `c${i} ` } }] };
        await sleep(1);
        if (fail && i === 9) throw new Error("the model gave up");
      }
    }
    const ok = await producer.socket.pipe(topic, model(false), { id: "piped-ok" });
    expect(ok).toMatchObject({ id: "piped-ok", chunks: 20, status: "done" });
    await expect(producer.socket.pipe(topic, model(true), { id: "piped-fail" })).rejects.toThrow("the model gave up");
    await eventually(() => seen.last.get("piped-fail")?.done === true, "the failed stream's end");
    expect(seen.last.get("piped-ok")).toMatchObject({ status: "done", text: Array.from({ length: 20 }, (_, i) => (i % 2 ? `t${i} ` : `c${i} `)).join("") });
    expect(seen.last.get("piped-fail")).toMatchObject({ status: "error", error: "the model gave up", chunks: 10 });
    viewer.disconnect();
    producer.close();
  });

  it("a producer that goes away or falls silent: every viewer gets the end, with an error", { timeout: 30_000 }, async () => {
    const topic = "ai/hang";
    const viewer = new NodeClient({ url: server.url, token: "viewer" });
    const seen = watch(viewer.channel(topic));
    await viewer.channel(topic).subscribe().ready();

    // Its connection dropped.
    const proxy = await LoopbackProxy.start(server.port);
    const dropped = createServerSdk({ url: proxy.url, apiKey: "ai-key", onError: () => {} });
    const w1 = dropped.socket.stream(topic, { id: "dropped" });
    w1.write("half ");
    await eventually(() => seen.last.get("dropped")?.chunks === 1, "the first chunk");
    const t0 = Date.now();
    proxy.dropAll();
    await eventually(() => seen.last.get("dropped")?.done === true, "the end of the dropped producer's stream", IDLE_MS + 3000);
    expect(seen.last.get("dropped")).toMatchObject({ status: "error", text: "half " });
    console.log(`producer connection dropped: viewers had stream:end (error) ${Date.now() - t0} ms later`);
    await expect(w1.done).rejects.toThrow();
    await proxy.close();
    dropped.close();

    // Its process killed.
    const child = spawn(process.execPath, ["--import", "tsx", "-e", `
      import { createServerSdk } from "./clients/src/server-sdk.ts";
      const sdk = createServerSdk({ url: ${JSON.stringify(server.url)}, apiKey: "ai-key", onError: () => {} });
      const w = sdk.socket.stream(${JSON.stringify(topic)}, { id: "killed" });
      setInterval(() => w.write("tick "), 20);
    `], { cwd: ROOT, stdio: "ignore" });
    try {
      await eventually(() => (seen.last.get("killed")?.chunks ?? 0) >= 3, "the child's chunks", 15_000);
      const t1 = Date.now();
      child.kill("SIGKILL");
      await eventually(() => seen.last.get("killed")?.done === true, "the end of the killed producer's stream", IDLE_MS + 3000);
      expect(seen.last.get("killed")!.status).toBe("error");
      console.log(`producer SIGKILLed: viewers had stream:end (error) ${Date.now() - t1} ms later`);
    } finally {
      child.kill("SIGKILL");
    }

    // Silent past the idle timeout, its connection still up.
    const producer = sdk();
    const w3 = producer.socket.stream(topic, { id: "silent" });
    w3.write("hello ");
    const t2 = Date.now();
    await eventually(() => seen.last.get("silent")?.done === true, "the silent stream's end", IDLE_MS + 3000);
    expect(Date.now() - t2).toBeGreaterThanOrEqual(IDLE_MS - 100);
    expect(seen.last.get("silent")).toMatchObject({ status: "error", text: "hello " });
    expect(seen.last.get("silent")!.error).toMatch(/sent nothing/);
    expect(await codeOf(w3.end())).toBe("DeadlineExceeded");
    viewer.disconnect();
    producer.close();
  });

  describe("a viewer that stops reading", () => {
    const small = serverForSuite({ ...engine.env(), CHORUS_MAX_QUEUED_FRAMES: "64", CHORUS_API_KEYS: "ai-key", CHORUS_MAX_PUBLISH_RATE: "0" });

    it("gets larger chunks and the same final text; the producer and the other viewers are not slowed", { timeout: 60_000 }, async () => {
      const topic = "ai/slow";
      // The slow viewer is a process of its own, stopped (SIGSTOP) for a second in the middle of the stream.
      const child = spawn(process.execPath, ["--import", "tsx", "test/helpers/stream-viewer.ts", small.url, topic], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout!.on("data", (d) => (out += d));
      try {
        await eventually(() => out.includes("ready"), "the slow viewer subscribed", 15_000);
        const fast = new NodeClient({ url: small.url, token: "fast" });
        const fastSeen = watch(fast.channel(topic));
        await fast.channel(topic).subscribe().ready();
        const producer = createServerSdk({ url: small.url, apiKey: "ai-key", onError: () => {} });
        const parts = Array.from({ length: 3000 }, (_, i) => `${i}:${"x".repeat(140)} `);
        const writer = producer.socket.stream(topic, { id: "fast-stream" });
        const started = Date.now();
        for (let i = 0; i < parts.length; i++) {
          writer.write(parts[i]);
          if (i === 500) child.kill("SIGSTOP");
          if (i === 2500) child.kill("SIGCONT");
          if (i % 5 === 0) await sleep(1);
        }
        const result = await writer.end();
        const producerMs = Date.now() - started;
        await eventually(() => fastSeen.last.get("fast-stream")?.done === true, "the fast viewer's end", 10_000);
        const fastMs = Date.now() - started;
        const text = parts.join("");
        expect(result.status).toBe("done");
        expect(fastSeen.last.get("fast-stream")!.text).toBe(text);
        await eventually(() => out.includes("{"), "the slow viewer's end", 30_000);
        const slow = JSON.parse(out.slice(out.indexOf("{"))) as { sha: string; length: number; status: string; frames: number; lagged: number };
        console.log(`slow viewer: ${slow.frames} chunk frames, lagged ${slow.lagged}×; producer wrote 3000 chunks (${Math.round(text.length / 1024)} KB) in ${producerMs} ms, the fast viewer had the end ${fastMs} ms after the start`);
        expect(slow.status).toBe("done");
        expect(slow).toMatchObject({ length: text.length, sha: createHash("sha256").update(text).digest("hex") });
        expect(slow.lagged).toBeGreaterThan(0);
        // Not slowed: the stopped viewer held nobody up for its second.
        expect(fastMs - producerMs).toBeLessThan(1000);
        fast.disconnect();
        producer.close();
      } finally {
        child.kill("SIGKILL");
      }
    });
  });

  describe.each(transports)("a user client streaming over $name", (transport) => {
    it("its viewers get exactly its text; a dropped connection ends its stream with an error", { timeout: 30_000 }, async () => {
      const topic = `peer/${transport.name.split(" ")[0]}`;
      const viewer = new NodeClient({ url: server.url, token: "viewer" });
      const seen = watch(viewer.channel(topic));
      await viewer.channel(topic).subscribe().ready();
      const author = transport.create({ url: server.url, token: "author" });
      const parts = tokens(200, "u");
      const writer = author.channel(topic).stream("reply", { meta: { by: "author" } });
      for (const t of parts) writer.write(t);
      writer.write({ citations: [1, 2] });
      const result = await writer.end();
      expect(result).toMatchObject({ id: writer.id, status: "done" });
      expect(result.position?.seq).toBeGreaterThan(0);
      await eventually(() => seen.last.get(writer.id)?.done === true, "the end");
      expect(seen.last.get(writer.id)).toMatchObject({ event: "reply", meta: { by: "author" }, text: parts.join(""), values: [{ citations: [1, 2] }], status: "done" });
      // Refused at its first write: a table topic, a reserved event.
      expect(await codeOf(author.channel("orders").stream("x").end())).toBe("PermissionDenied");
      expect(await codeOf(author.channel(topic).stream("stream:end").end())).toBe("InvalidArgument");

      // Its connection drops mid-stream: the stream ends for its viewers; its writer fails.
      const proxy = await LoopbackProxy.start(server.port);
      const flaky = transport.create({ url: proxy.url, token: "flaky" });
      await flaky.connect();
      const cut = flaky.channel(topic).stream("reply", { id: "cut-short" });
      cut.write("so far ");
      await eventually(() => seen.last.get("cut-short")?.chunks === 1, "its first chunk");
      proxy.dropAll();
      await eventually(() => seen.last.get("cut-short")?.done === true, "its end", 15_000);
      expect(seen.last.get("cut-short")).toMatchObject({ status: "error", text: "so far " });
      await eventually(() => flaky.status === "connected", "the client back", 15_000);
      // Writing on fails: at once if the writer saw its connection go, else from the server (the stream is not open there).
      let threw = false;
      try {
        cut.write("more");
      } catch {
        threw = true;
      }
      expect(threw || (await codeOf(cut.done)) === "FailedPrecondition").toBe(true);
      await expect(cut.done).rejects.toThrow();
      flaky.disconnect();
      await proxy.close();
      author.disconnect();
      viewer.disconnect();
    });
  });

  it("refuses what it must, with the right code, and ends a refused stream for its viewers", async () => {
    const topic = "ai/limits";
    const viewer = new NodeClient({ url: server.url, token: "viewer" });
    const seen = watch(viewer.channel(topic));
    await viewer.channel(topic).subscribe().ready();
    const producer = sdk();
    const big = producer.socket.stream(topic, { id: "too-big" });
    big.write("x".repeat(17 * 1024));
    expect(await codeOf(big.done)).toBe("ResourceExhausted");
    await eventually(() => seen.last.get("too-big")?.done === true, "the refused stream's end");
    expect(seen.last.get("too-big")).toMatchObject({ status: "error" });

    expect(await codeOf(producer.socket.stream("orders", {}).end())).toBe("InvalidArgument"); // a table topic
    expect(await codeOf(producer.socket.stream("bad topic", {}).end())).toBe("InvalidArgument");
    expect(await codeOf(producer.socket.stream(topic, { event: "stream:chunk" }).end())).toBe("InvalidArgument");
    expect(await codeOf(producer.socket.stream(topic, { id: "has space" }).end())).toBe("InvalidArgument");
    const first = producer.socket.stream(topic, { id: "twice" });
    first.write("a");
    expect(await codeOf(producer.socket.stream(topic, { id: "twice" }).end())).toBe("AlreadyExists");
    await first.end();
    const anonymous = createServerSdk({ url: server.url, onError: () => {} });
    expect(await codeOf(anonymous.socket.stream(topic).end())).toBe("Unauthenticated");
    anonymous.close();
    // Users cannot forge stream payloads.
    expect(await codeOf(viewer.channel(topic).publish("stream:end", { id: "x" }))).toBe("InvalidArgument");
    viewer.disconnect();
    producer.close();
  });

  describe("with small limits", () => {
    const tight = serverForSuite({ ...engine.env(), CHORUS_MAX_STREAMS_PER_TOPIC: "2", CHORUS_MAX_STREAMS_PER_PRODUCER: "3", CHORUS_MAX_STREAM_BYTES: "1024", CHORUS_API_KEYS: "ai-key,other-key" });

    it("refuses streams past the per-topic and per-producer limits, and a response past its size, with RESOURCE_EXHAUSTED", async () => {
      const producer = createServerSdk({ url: tight.url, apiKey: "ai-key", onError: () => {} });
      const other = createServerSdk({ url: tight.url, apiKey: "other-key", onError: () => {} });
      const open = [producer.socket.stream("ai/one"), producer.socket.stream("ai/one")];
      for (const s of open) s.write("x");
      await sleep(100);
      expect(await codeOf(other.socket.stream("ai/one").end())).toBe("ResourceExhausted"); // the topic's two
      const third = producer.socket.stream("ai/two");
      third.write("x");
      await sleep(100);
      expect(await codeOf(producer.socket.stream("ai/three").end())).toBe("ResourceExhausted"); // the key's three
      expect((await other.socket.stream("ai/three").end()).status).toBe("done"); // another key is not held to them
      for (const s of [...open, third]) await s.end();
      expect((await producer.socket.stream("ai/one").end()).status).toBe("done"); // ended ones count no more
      // A user's connection: 16 streams open at once.
      const user = new NodeClient({ url: tight.url, token: "chatty" });
      const mine = Array.from({ length: 16 }, (_, i) => user.channel(`peer/${i}`).stream("reply", { id: `mine-${i}` }));
      await sleep(200);
      expect(await codeOf(user.channel("peer/16").stream("reply").end())).toBe("ResourceExhausted");
      expect((await Promise.all(mine.map((s) => s.end()))).every((r) => r.status === "done")).toBe(true);
      user.disconnect();
      const long = producer.socket.stream("ai/long");
      for (let i = 0; i < 20; i++) long.write("y".repeat(60));
      expect(await codeOf(long.done)).toBe("ResourceExhausted");
      producer.close();
      other.close();
    });
  });
});

/** Streams across Chorus nodes on one NATS (default node timeout: 5 s). */
describe.skipIf(!engines.some((e) => e.name === "nats"))("token streams across Chorus nodes on NATS", () => {
  const nodes: ServerProcess[] = [];
  const env = () => natsEngineEnv(SHARED_NATS_URL, prefix, { CHORUS_API_KEYS: "ai-key", CHORUS_MAX_PUBLISH_RATE: "0" });
  const prefix = uniquePrefix("streams-nodes");
  afterAll(async () => {
    for (const node of nodes) {
      await node.stop();
      removeDir(node.dataDir);
    }
  });

  it("viewers on another node, from the start and joining midway, get exactly the text; a killed producer node's streams end there within the bound", { timeout: 60_000 }, async () => {
    const [a, b] = await Promise.all([startServer(env()), startServer(env())]);
    nodes.push(a, b);
    const topic = "ai/across";
    const onB = new NodeClient({ url: b.url, token: "bea" });
    const seenOnB = watch(onB.channel(topic));
    await onB.channel(topic).subscribe().ready();
    const producer = createServerSdk({ url: a.url, apiKey: "ai-key", onError: () => {} });
    const parts = tokens(300);
    const writer = producer.socket.stream(topic, { id: "across", meta: { on: "a" } });
    for (const t of parts.slice(0, 150)) writer.write(t);
    await eventually(() => seenOnB.last.get("across")?.chunks === 150, "the first half on B");
    // Joins on B midway: B followed the stream from its start, so it catches the newcomer up.
    const lateOnB = new BrowserClient({ url: b.url, token: "lee" });
    const lateSeen = watch(lateOnB.channel(topic));
    await lateOnB.channel(topic).subscribe().ready();
    await eventually(() => lateSeen.last.get("across")?.chunks === 150, "the text so far for the late joiner on B");
    expect(lateSeen.last.get("across")!.text).toBe(parts.slice(0, 150).join(""));
    // Joins midway on a node nobody there watched the topic on: that node asks the others, with presence's snapshot.
    const c = await startServer(env());
    nodes.push(c);
    const onC = new NodeClient({ url: c.url, token: "cal" });
    const seenOnC = watch(onC.channel(topic));
    await onC.channel(topic).subscribe().ready();
    await eventually(() => seenOnC.last.get("across")?.chunks === 150, "the text so far for the late joiner on C", 10_000);
    expect(seenOnC.last.get("across")!.text).toBe(parts.slice(0, 150).join(""));
    for (const t of parts.slice(150)) writer.write(t);
    await writer.end();
    for (const seen of [seenOnB, lateSeen, seenOnC]) {
      await eventually(() => seen.last.get("across")?.done === true, "the end on B");
      expect(seen.last.get("across")).toMatchObject({ text: parts.join(""), status: "done", chunks: 300, meta: { on: "a" } });
    }

    // The node producing a stream dies: the others end it within the node timeout.
    const dying = producer.socket.stream(topic, { id: "orphan" });
    dying.write("before the crash");
    await eventually(() => seenOnB.last.get("orphan")?.chunks === 1, "the orphan's chunk on B");
    const killedAt = Date.now();
    await a.kill();
    await eventually(() => seenOnB.last.get("orphan")?.done === true, "the orphan's end on B", 15_000);
    const endedAfter = Date.now() - killedAt;
    console.log(`streams: a SIGKILLed node's stream ended on the other node ${endedAfter} ms after the kill (presence's failure bound: 10000 ms)`);
    // The node timeout (5 s) and a heartbeat find the node gone; presence's members leave within 10 s, streams end sooner.
    expect(endedAfter).toBeLessThan(10_000);
    expect(seenOnB.last.get("orphan")).toMatchObject({ status: "error", text: "before the crash" });
    await eventually(() => lateSeen.last.get("orphan")?.done === true, "the orphan's end for the late joiner too");
    // Stored once, whichever node ended it.
    await sleep(500);
    const history = await onB.channel(topic).getHistory(20);
    expect(history.filter((m) => m.data.id === "orphan")).toHaveLength(1);
    expect(history.filter((m) => m.data.id === "across")).toHaveLength(1);
    producer.close();
    onB.disconnect();
    lateOnB.disconnect();
    onC.disconnect();
  });
});

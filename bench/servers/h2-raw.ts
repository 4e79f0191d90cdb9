// Peer: the practical limit of HTTP/2 streams in Node. Subscribers hold a
// GET stream; a message is framed once ([u32 length][bytes]) and every
// subscriber's frames queued during one event-loop turn leave in one write,
// the same batching Chorus does, with no protocol or features on top.
import * as http2 from "node:http2";

const topics = new Map<string, Set<Sub>>();
const dirty = new Set<Sub>();
let scheduled = false;

interface Sub {
  stream: http2.ServerHttp2Stream;
  queue: Buffer[];
}

function flush(): void {
  scheduled = false;
  for (const sub of dirty) {
    if (!sub.stream.destroyed) sub.stream.write(sub.queue.length === 1 ? sub.queue[0]! : Buffer.concat(sub.queue));
    sub.queue = [];
  }
  dirty.clear();
}

function publish(topic: string, frame: Buffer): void {
  for (const sub of topics.get(topic) ?? []) {
    sub.queue.push(frame);
    dirty.add(sub);
  }
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on("stream", (stream, headers) => {
  stream.on("error", () => {}); // a generator closing its connection resets the stream: not a failure
  const match = /^\/(sub|pub)\/(.+)$/.exec(String(headers[":path"]));
  const kind = match?.[1];
  const path = decodeURIComponent(match?.[2] ?? "");
  if (kind === "sub") {
    const sub: Sub = { stream, queue: [] };
    let set = topics.get(path);
    if (!set) topics.set(path, (set = new Set()));
    set.add(sub);
    stream.respond({ ":status": 200, "content-type": "application/octet-stream" });
    stream.write(Buffer.alloc(4)); // an empty frame: "subscribed"
    stream.on("close", () => set!.delete(sub));
  } else if (kind === "pub") {
    // A long-lived request stream of frames; each is broadcast, then acknowledged with one byte.
    stream.respond({ ":status": 200 });
    let pending: Buffer = Buffer.alloc(0);
    stream.on("data", (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let acks = 0;
      while (pending.length >= 4) {
        const length = pending.readUInt32BE(0);
        if (pending.length < 4 + length) break;
        publish(path, pending.subarray(0, 4 + length));
        pending = pending.subarray(4 + length);
        acks++;
      }
      if (acks) stream.write(Buffer.alloc(acks, 1));
    });
    stream.on("end", () => stream.end());
  } else {
    stream.respond({ ":status": 404 });
    stream.end();
  }
});
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const { port } = server.address() as { port: number };
  console.log(`h2-raw listening on http://127.0.0.1:${port}`);
});
process.on("SIGTERM", () => process.exit(0));

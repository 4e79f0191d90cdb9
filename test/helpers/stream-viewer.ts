// A token stream viewer in a process of its own (the tests stop it with
// SIGSTOP to make it a reader that falls behind): subscribes to a topic,
// prints "ready", then, when the first stream it sees ends, one JSON line
// with what it assembled (a digest of the text), and exits.
// Usage: node --import tsx test/helpers/stream-viewer.ts <url> <topic>
import { createHash } from "node:crypto";
import { RealtimeClient } from "../../clients/src/node.js";

const [url, topic] = process.argv.slice(2);
const client = new RealtimeClient({ url: url!, token: "viewer-process" });
const channel = client.channel(topic!);
let frames = 0;
let lagged = 0;
channel.on("stream:chunk", () => frames++).on("system:lagged", () => lagged++);
channel.onStream((s) => {
  if (!s.done) return;
  const line = JSON.stringify({ sha: createHash("sha256").update(s.text).digest("hex"), length: s.text.length, status: s.status, frames, lagged });
  process.stdout.write(`${line}\n`, () => process.exit(0));
});
channel.subscribe();
await channel.ready();
console.log("ready");

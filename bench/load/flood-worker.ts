// The flood of the flood benchmark, in a process of its own: 300 connection
// attempts against a node's limit, then the admitted clients publishing as
// fast as they can, again and again, until told to stop (SIGTERM).
// Usage: node --import tsx bench/load/flood-worker.ts <url>
import { RealtimeClient } from "../../clients/src/node.js";

const url = process.argv[2]!;
const attempts = Array.from({ length: 300 }, (_, i) => new RealtimeClient({ url, token: `flood-${i}`, reconnect: false }));
const results = await Promise.allSettled(attempts.map((c) => c.connect()));
const admitted = attempts.filter((_, i) => results[i]!.status === "fulfilled");
process.send?.({ admitted: admitted.length });
let stopping = false;
process.on("SIGTERM", () => {
  stopping = true;
  for (const c of attempts) c.disconnect();
  setTimeout(() => process.exit(0), 200).unref();
});
while (!stopping) {
  await Promise.allSettled(admitted.slice(0, 20).flatMap((c) => Array.from({ length: 100 }, (_, n) => c.channel("chat/flood").publish("m", { n }))));
}

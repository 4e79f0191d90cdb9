// The embedded engine's resources stay bounded whatever the number of
// topics, its data directory belongs to one process at a time, and a
// history file a crash left empty or torn is repaired on start.
import { appendFileSync, readdirSync, readFileSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { NodeClient } from "../helpers/clients.js";
import { health, removeDir, rssMB, startServer } from "../helpers/server.js";

/** Stated budget: a node's resident memory with 100 000 persisted topics (10 000 of them in memory at once). */
const RSS_BUDGET_MB = 400;

it("keeps 100 000 persisted topics working under ulimit -n 1024, within its memory budget", { timeout: 240_000 }, async () => {
  const server = await startServer({ CHORUS_MAX_PUBLISH_RATE: "0" }, undefined, { fdLimit: 1024 });
  const publishers = Array.from({ length: 4 }, (_, p) => new NodeClient({ url: server.url, token: `many-${p}` }));
  try {
    const TOPICS = 100_000;
    const started = Date.now();
    let peak = 0;
    for (let from = 0; from < TOPICS; from += 2000) {
      await Promise.all(
        Array.from({ length: 2000 }, (_, k) => {
          const t = from + k;
          return publishers[t % 4]!.channel(`many/t${t}`).publish("m", { t }, { persist: true });
        }),
      );
      peak = Math.max(peak, rssMB(server.pid));
    }
    const elapsed = Date.now() - started;
    // History of topics written long ago (their files closed, their state forgotten) and of recent ones.
    for (const t of [0, 1, 4321, 50_000, 99_999]) {
      const page = await publishers[0]!.channel(`many/t${t}`).getHistory(10);
      expect(page.map((m) => m.data.t)).toEqual([t]);
    }
    // And they take more messages, positions going on.
    expect((await publishers[1]!.channel("many/t7").publish("m", { t: 7 }, { persist: true })).position?.seq).toBe(2);
    expect((await health(server.url)).status).toBe("ok");
    expect(server.output()).not.toMatch(/EMFILE|too many open files/i);
    console.log(`100 000 persisted topics under ulimit -n 1024: written in ${elapsed} ms, peak RSS ${peak.toFixed(0)} MB (budget ${RSS_BUDGET_MB} MB), ${readdirSync(server.dataDir).length} files`);
    expect(peak).toBeLessThan(RSS_BUDGET_MB);
  } finally {
    for (const p of publishers) p.disconnect();
    await server.stop();
    removeDir(server.dataDir);
  }
});

it("refuses a second server on the same data directory, naming the holder", { timeout: 30_000 }, async () => {
  const first = await startServer();
  try {
    const second = await startServer({}, first.dataDir).then(
      () => undefined,
      (error: Error) => error.message,
    );
    expect(second).toMatch(/exited with 1/);
    expect(second).toMatch(new RegExp(`in use by process ${first.pid}`));
  } finally {
    await first.stop();
    removeDir(first.dataDir);
  }
});

it("repairs history files a crash left empty or torn, on start", { timeout: 30_000 }, async () => {
  let server = await startServer();
  const dir = server.dataDir;
  const client = new NodeClient({ url: server.url, reconnect: false });
  for (let i = 1; i <= 3; i++) {
    await client.channel("chat/emptied").publish("m", i, { persist: true });
    await client.channel("chat/torn").publish("m", i, { persist: true });
  }
  client.disconnect();
  await server.kill();
  const files = readdirSync(dir).filter((f) => f.endsWith(".jsonl")).map((f) => join(dir, f));
  truncateSync(files.find((f) => topicOf(f) === "chat/emptied")!, 0);
  appendFileSync(files.find((f) => topicOf(f) === "chat/torn")!, '{"s":4,"i":"x","e":"m","d":"4","u');
  server = await startServer({}, dir);
  const reader = new NodeClient({ url: server.url });
  try {
    // The emptied topic starts over (a new epoch); the torn one keeps its whole messages and goes on.
    const fresh = await reader.channel("chat/emptied").publish("m", "again", { persist: true });
    expect(fresh.position?.seq).toBe(1);
    expect((await reader.channel("chat/torn").getHistory(10)).map((m) => m.data)).toEqual([3, 2, 1]);
    expect((await reader.channel("chat/torn").publish("m", 4, { persist: true })).position?.seq).toBe(4);
    expect(server.output()).toMatch(/chat\/emptied.*empty.*new epoch/);
  } finally {
    reader.disconnect();
    await server.stop();
    removeDir(dir);
  }
});

/** The topic a history file belongs to (its header line). */
function topicOf(path: string): string {
  return (JSON.parse(readFileSync(path, "utf8").split("\n", 1)[0]!) as { topic: string }).topic;
}

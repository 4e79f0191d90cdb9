// The embedded engine's history on disk: positions, pages by position and
// by time, bounds in bytes, repair of whatever a crash can leave behind,
// de-duplication that survives a restart, compaction, bounded descriptors,
// the directory lock, and new epochs when acknowledged writes may be lost.
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import type { StoredMessage } from "../../server/src/engine/engine.js";
import { parseRetention } from "../../server/src/engine/retention.js";
import { HistoryStore, type HistoryOptions } from "../../server/src/engine/store/history-store.js";
import { DataDirInUse } from "../../server/src/engine/store/lock.js";

const dirs: string[] = [];
const stores: HistoryStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => {});
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const logs: string[] = [];
function open(dir: string, options: Partial<HistoryOptions> = {}): HistoryStore {
  const store = new HistoryStore({ dir, retention: parseRetention("**=count:1000"), fsync: false, maxOpenFiles: 64, maxTopicsInMemory: 1000, cacheBytes: 1 << 20, log: (m) => logs.push(m), ...options });
  stores.push(store);
  return store;
}
const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), "chorus-store-"));
  dirs.push(dir);
  return dir;
};
const closeAll = async () => {
  for (const s of stores.splice(0)) await s.close();
};
const input = (n: number, id = "", publisher = "user:a") => ({ id: id || `m${n}`, clientId: id !== "", publisher, event: "m", data: JSON.stringify({ n }), userId: "a", connectionId: "c1" });
const query = { limit: 100, before: 0, beforeSeq: 0, maxBytes: 0 };
const seqs = (messages: StoredMessage[]) => messages.map((m) => m.seq);

async function fill(store: HistoryStore, topic: string, count: number, from = 1): Promise<void> {
  await Promise.all(Array.from({ length: count }, (_, k) => store.append(topic, input(from + k), () => {})));
}

it("numbers messages per topic, pages by position and by time, and keeps all of it across a restart", async () => {
  const dir = fresh();
  let store = open(dir);
  await fill(store, "chat/a", 10);
  await store.append("chat/b", input(99), () => {});
  const all = await store.query("chat/a", query);
  expect(seqs(all.messages)).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
  expect(seqs((await store.query("chat/a", { ...query, limit: 3, beforeSeq: 5 })).messages)).toEqual([4, 3, 2]);
  const byTime = await store.query("chat/a", { ...query, limit: 3, before: all.messages[4]!.createdAt });
  expect([seqs(byTime.messages), byTime.hasMore]).toEqual([[5, 4, 3], true]);
  await closeAll();
  store = open(dir, { cacheBytes: 0 }); // nothing cached: everything from disk
  const again = await store.query("chat/a", query);
  expect(again.messages).toEqual(all.messages);
  expect(again.epoch).toBe(all.epoch);
  expect(seqs((await store.since("chat/a", 7, { limit: 10, maxBytes: 0 })).messages)).toEqual([8, 9, 10]);
  expect((await store.append("chat/a", input(11), () => {})).seq).toBe(11);
  expect(seqs((await store.query("chat/b", query)).messages)).toEqual([1]);
});

it("delivers a message only once it is written, in order, before acknowledging it", async () => {
  const store = open(fresh());
  const events: string[] = [];
  const acks = Array.from({ length: 5 }, (_, k) => store.append("chat/order", input(k + 1), (m) => events.push(`deliver ${m.seq}`)).then((r) => events.push(`ack ${r.seq}`)));
  store.passThrough("chat/order", () => events.push("ephemeral"));
  expect(events).toEqual([]); // nothing before the write
  await Promise.all(acks);
  const deliveries = events.filter((e) => e !== "ephemeral" && e.startsWith("deliver"));
  expect(deliveries).toEqual(["deliver 1", "deliver 2", "deliver 3", "deliver 4", "deliver 5"]);
  for (let k = 1; k <= 5; k++) expect(events.indexOf(`deliver ${k}`)).toBeLessThan(events.indexOf(`ack ${k}`));
  expect(events.indexOf("ephemeral")).toBeGreaterThan(events.indexOf("deliver 5"));
});

it("bounds pages and replays in bytes, at least one message each", async () => {
  const dir = fresh();
  const store = open(dir, { cacheBytes: 0 });
  for (let k = 1; k <= 10; k++) await store.append("chat/big", { ...input(k), data: JSON.stringify("x".repeat(10_000)) }, () => {});
  const page = await store.query("chat/big", { ...query, maxBytes: 35_000 });
  expect([seqs(page.messages), page.hasMore]).toEqual([[10, 9, 8], true]);
  expect(seqs((await store.since("chat/big", 0, { limit: 100, maxBytes: 25_000 })).messages)).toEqual([1, 2]);
  expect(seqs((await store.since("chat/big", 0, { limit: 100, maxBytes: 1 })).messages)).toEqual([1]);
});

it("repairs a torn tail on open: the partial line and record are cut, positions go on from the last whole one", async () => {
  const dir = fresh();
  let store = open(dir);
  await fill(store, "chat/torn", 5);
  await closeAll();
  const [data] = readdirSync(dir).filter((f) => f.endsWith(".jsonl"));
  const index = data!.replace(".jsonl", ".idx");
  appendFileSync(join(dir, data!), '{"s":6,"i":"m6","e":"m","d":"{\\"n');
  appendFileSync(join(dir, index), Buffer.alloc(17, 1));
  store = open(dir);
  expect((await store.query("chat/torn", query)).lastSeq).toBe(5);
  expect((await store.append("chat/torn", input(6), () => {})).seq).toBe(6);
  await closeAll();
  store = open(dir);
  expect(seqs((await store.query("chat/torn", query)).messages)).toEqual([6, 5, 4, 3, 2, 1]);
});

it("starts a topic afresh under a new epoch when its file is empty, instead of failing", async () => {
  const dir = fresh();
  let store = open(dir);
  await fill(store, "chat/empty", 3);
  const before = (await store.query("chat/empty", query)).epoch;
  await closeAll();
  const [data] = readdirSync(dir).filter((f) => f.endsWith(".jsonl"));
  truncateSync(join(dir, data!), 0);
  store = open(dir);
  const first = await store.append("chat/empty", input(1), () => {});
  expect(first.seq).toBe(1);
  expect(first.epoch).not.toBe(before);
  expect(seqs((await store.query("chat/empty", query)).messages)).toEqual([1]);
});

it("rebuilds an index that does not match its data, and builds one for files written before indexes", async () => {
  const dir = fresh();
  let store = open(dir);
  await fill(store, "chat/rebuild", 4);
  const epoch = (await store.query("chat/rebuild", query)).epoch;
  await closeAll();
  const [data] = readdirSync(dir).filter((f) => f.endsWith(".jsonl"));
  const index = join(dir, data!.replace(".jsonl", ".idx"));
  rmSync(index); // as before indexes existed
  store = open(dir);
  const page = await store.query("chat/rebuild", query);
  expect([seqs(page.messages), page.epoch]).toEqual([[4, 3, 2, 1], epoch]);
  await closeAll();
  writeFileSync(index, Buffer.concat([readFileSync(index).subarray(0, 8), Buffer.alloc(16, 0x41), readFileSync(index).subarray(24)])); // another file's name
  store = open(dir);
  expect(seqs((await store.query("chat/rebuild", query)).messages)).toEqual([4, 3, 2, 1]);
});

it("keeps what comes before damage in the middle of a file, under a new epoch", async () => {
  const dir = fresh();
  let store = open(dir);
  await fill(store, "chat/damaged", 5);
  const epoch = (await store.query("chat/damaged", query)).epoch;
  await closeAll();
  const [data] = readdirSync(dir).filter((f) => f.endsWith(".jsonl"));
  const lines = readFileSync(join(dir, data!), "utf8").split("\n");
  lines[3] = lines[3]!.replace('"s":3', '"s":9');
  writeFileSync(join(dir, data!), lines.join("\n"));
  rmSync(join(dir, data!.replace(".jsonl", ".idx")));
  store = open(dir);
  const page = await store.query("chat/damaged", query);
  expect(seqs(page.messages)).toEqual([2, 1]);
  expect(page.epoch).not.toBe(epoch);
});

it("stores a retried publish once, also after a restart, within its publisher's own ids", async () => {
  const dir = fresh();
  let store = open(dir);
  const first = await store.append("chat/dedup", input(1, "abc", "user:a"), () => {});
  expect((await store.append("chat/dedup", input(1, "abc", "user:a"), () => {})).seq).toBe(first.seq);
  expect((await store.append("chat/dedup", input(2, "abc", "user:b"), () => {})).seq).toBe(2); // another publisher's "abc"
  await closeAll();
  store = open(dir);
  let delivered = 0;
  const retried = await store.append("chat/dedup", input(1, "abc", "user:a"), () => delivered++);
  expect([retried.seq, retried.epoch, retried.timestamp, delivered]).toEqual([first.seq, first.epoch, first.timestamp, 0]);
  expect(seqs((await store.query("chat/dedup", query)).messages)).toEqual([2, 1]);
});

it("trims by retention and compacts the files, keeping positions", async () => {
  const dir = fresh();
  let store = open(dir, { retention: parseRetention("**=count:100") });
  await fill(store, "chat/compact", 1500);
  await store.append("chat/compact", input(1501), () => {});
  await new Promise((r) => setTimeout(r, 100));
  const page = await store.query("chat/compact", { ...query, limit: 1000 });
  expect(seqs(page.messages)).toEqual(Array.from({ length: 100 }, (_, k) => 1501 - k));
  await closeAll();
  const [data] = readdirSync(dir).filter((f) => f.endsWith(".jsonl"));
  expect(readFileSync(join(dir, data!), "utf8").split("\n").length).toBeLessThan(1200); // compacted
  store = open(dir);
  expect(seqs((await store.query("chat/compact", { ...query, limit: 3 })).messages)).toEqual([1501, 1500, 1499]);
  expect((await store.append("chat/compact", input(1502), () => {})).seq).toBe(1502);
});

it("keeps at most its bound of descriptors open and of topics in memory, for any number of topics", async () => {
  const store = open(fresh(), { maxOpenFiles: 8, maxTopicsInMemory: 20 });
  for (let t = 0; t < 200; t++) await store.append(`chat/t${t}`, input(1), () => {});
  expect(store.footprint.openFiles).toBeLessThanOrEqual(8);
  expect(store.footprint.topics).toBeLessThanOrEqual(20);
  for (let t = 0; t < 200; t += 37) expect(seqs((await store.query(`chat/t${t}`, query)).messages)).toEqual([1]);
  expect((await store.append("chat/t0", input(2), () => {})).seq).toBe(2);
});

it("locks its directory: a second store refuses to open it and names the holder", async () => {
  const dir = fresh();
  open(dir);
  expect(() => open(dir)).toThrow(DataDirInUse);
  expect(() => open(dir)).toThrow(new RegExp(`process ${process.pid}`));
});

it("starts new epochs when the last run ended uncleanly on an earlier boot without fsync", async () => {
  const dir = fresh();
  let store = open(dir);
  await fill(store, "chat/power", 2);
  const epoch = (await store.query("chat/power", query)).epoch;
  await closeAll();
  // A lock left behind by a process of another boot, which did not fsync.
  writeFileSync(join(dir, "LOCK"), JSON.stringify({ pid: 1, boot: "an-earlier-boot", started: "1", fsync: "never" }));
  store = open(dir);
  const page = await store.query("chat/power", query);
  expect(seqs(page.messages)).toEqual([2, 1]);
  expect(page.epoch).not.toBe(epoch);
  expect(logs.some((l) => /new epoch/.test(l))).toBe(true);
  await closeAll();
  // A clean shutdown in between: nothing more changes.
  store = open(dir);
  expect((await store.query("chat/power", query)).epoch).toBe(page.epoch);
  expect(existsSync(join(dir, "STATE"))).toBe(true);
});

it("keeps its cache of recent messages within the node-wide budget, reading the rest from disk", async () => {
  const store = open(fresh(), { cacheBytes: 2 * 1024 * 1024 });
  const blob = "x".repeat(10_000);
  for (let t = 0; t < 40; t++) await Promise.all(Array.from({ length: 50 }, (_, k) => store.append(`chat/c${t}`, { ...input(k), data: JSON.stringify(blob) }, () => {})));
  expect(store.footprint.cachedBytes).toBeLessThanOrEqual(2 * 1024 * 1024);
  const page = await store.query("chat/c0", { ...query, limit: 50 });
  expect(page.messages).toHaveLength(50); // the first topic's cache was given back: these came from disk
});

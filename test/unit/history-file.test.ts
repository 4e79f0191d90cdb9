import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { FileHistory } from "../../server/src/engine/history-file.js";
import { parseRetention } from "../../server/src/engine/retention.js";

const dirs: string[] = [];
const freshDir = () => {
  const d = mkdtempSync(join(tmpdir(), "chorus-history-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const msg = (i: number) => ({ id: `m${i}`, event: "e", data: JSON.stringify({ i }), userId: "u", connectionId: "" });
const query = { limit: 1000, before: 0, beforeSeq: 0 };

it("numbers messages per topic and pages by seq and by time", async () => {
  const h = new FileHistory(freshDir(), parseRetention("**=count:100"));
  const written = [];
  for (let i = 1; i <= 10; i++) written.push(h.append("chat/a", msg(i)).written);
  h.append("chat/b", msg(99));
  await Promise.all(written);
  const all = h.query("chat/a", query);
  expect(all.messages.map((m) => m.seq)).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
  expect(all.lastSeq).toBe(10);
  expect(h.query("chat/a", { ...query, limit: 3, beforeSeq: 5 }).messages.map((m) => m.seq)).toEqual([4, 3, 2]);
  const byTime = h.query("chat/a", { ...query, limit: 3, before: all.messages[4]!.createdAt });
  expect(byTime.messages.map((m) => m.seq)).toEqual([5, 4, 3]);
  expect(byTime.hasMore).toBe(true);
  expect(h.query("chat/b", query).messages.map((m) => m.seq)).toEqual([1]);
  await h.close();
});

it("creates no file for a topic that is only queried", async () => {
  const dir = freshDir();
  const h = new FileHistory(dir, parseRetention("**=count:100"));
  expect(h.query("chat/nothing", query)).toEqual({ messages: [], epoch: "", lastSeq: 0, hasMore: false });
  await h.close();
  expect(readdirSync(dir)).toEqual([]);
});

it("reloads after a restart, ignoring a torn last line, and keeps seq and epoch", async () => {
  const dir = freshDir();
  const first = new FileHistory(dir, parseRetention("**=count:100"));
  let epoch = "";
  for (let i = 1; i <= 3; i++) epoch = first.append("chat/a", msg(i)).epoch;
  await first.close();
  const file = join(dir, readdirSync(dir)[0]!);
  appendFileSync(file, '{"s":4,"i":"torn'); // a crash mid-write

  const second = new FileHistory(dir, parseRetention("**=count:100"));
  expect(second.query("chat/a", query).messages.map((m) => m.seq)).toEqual([3, 2, 1]);
  const next = second.append("chat/a", msg(4));
  expect([next.stored.seq, next.epoch]).toEqual([4, epoch]);
  await second.close();
  expect(readFileSync(file, "utf8").trim().split("\n")).toHaveLength(1 + 4);
});

it("trims by count and compacts the file", async () => {
  const dir = freshDir();
  const h = new FileHistory(dir, parseRetention("**=count:10"));
  for (let i = 1; i <= 500; i++) h.append("chat/a", msg(i));
  await h.close();
  expect(h.query("chat/a", query).messages.map((m) => m.seq)).toEqual([500, 499, 498, 497, 496, 495, 494, 493, 492, 491]);
  const lines = readFileSync(join(dir, readdirSync(dir)[0]!), "utf8").trim().split("\n");
  expect(lines.length).toBeLessThanOrEqual(1 + 2 * 10 + 100);
  const reloaded = new FileHistory(dir, parseRetention("**=count:10"));
  expect(reloaded.query("chat/a", query).messages.map((m) => m.seq)[0]).toBe(500);
  await reloaded.close();
});

it("trims by age", async () => {
  const h = new FileHistory(freshDir(), parseRetention("**=age:1s"));
  h.append("chat/a", msg(1));
  await new Promise((r) => setTimeout(r, 1100));
  h.append("chat/a", msg(2));
  expect(h.query("chat/a", query).messages.map((m) => m.seq)).toEqual([2]);
  await h.close();
});

it("gives every message of a burst its own created_at", async () => {
  const h = new FileHistory(freshDir(), parseRetention("**=count:1000"));
  for (let i = 0; i < 200; i++) h.append("chat/a", msg(i));
  const times = h.query("chat/a", query).messages.map((m) => m.createdAt);
  expect(new Set(times).size).toBe(200);
  await h.close();
});

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { NodeClient } from "../helpers/clients.js";
import { removeDir, startServer } from "../helpers/server.js";

const dataDir = mkdtempSync(join(tmpdir(), "chorus-restart-"));
afterAll(() => removeDir(dataDir));

it("keeps persisted history across a restart, and after a crash", async () => {
  const first = await startServer({}, dataDir);
  const client = new NodeClient({ url: first.url, token: "writer" });
  let epoch = "";
  for (let i = 0; i < 30; i++) epoch = (await client.channel("chat/durable").publish("message", { i }, { persist: true })).position!.epoch;
  await client.channel("chat/durable").publish("message", { i: "ephemeral" });
  client.disconnect();
  expect(await first.stop()).toBe(0);

  const second = await startServer({}, dataDir);
  const reader = new NodeClient({ url: second.url });
  const page = await reader.channel("chat/durable").getHistory(20);
  expect(page.map((m) => m.data.i)).toEqual(Array.from({ length: 20 }, (_, k) => 29 - k));
  const older = await reader.channel("chat/durable").getHistory(20, page.at(-1)!.created_at);
  expect(older.map((m) => m.data.i)).toEqual(Array.from({ length: 10 }, (_, k) => 9 - k));
  // Positions continue where they were: no seq is reused after a restart.
  const sdk = createServerSdk({ url: second.url });
  const next = await sdk.socket.emit("message", { i: 30 }, "chat/durable", { persist: true });
  expect(next.position).toEqual({ seq: 31, epoch });
  reader.disconnect();
  sdk.close();

  // An acknowledged publish survives SIGKILL.
  await second.kill();
  const third = await startServer({}, dataDir);
  const after = new NodeClient({ url: third.url });
  expect((await after.channel("chat/durable").getHistory(1))[0]).toMatchObject({ seq: 31, data: { i: 30 } });
  after.disconnect();
  await third.stop();
});

it("applies per-topic retention by count", async () => {
  const server = await startServer({ CHORUS_RETENTION: "chat/short=count:5;**=count:1000,age:1d" });
  const c = new NodeClient({ url: server.url });
  for (let i = 0; i < 12; i++) {
    await c.channel("chat/short").publish("m", i, { persist: true });
    await c.channel("chat/long").publish("m", i, { persist: true });
  }
  expect((await c.channel("chat/short").getHistory(100)).map((m) => m.data)).toEqual([11, 10, 9, 8, 7]);
  expect(await c.channel("chat/long").getHistory(100)).toHaveLength(12);
  c.disconnect();
  await server.stop();
  removeDir(server.dataDir);
});
